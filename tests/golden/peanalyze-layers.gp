# peanalyze table: layers
# version: 0.1.0
# input: attn.h5 (T 128, positions 0..127, 2 layers, model petools planted attention fixture)
# merge: layer:block heads:fixed ood_heads:fixed mean_entropy_shift:fixed mean_sink_shift:fixed mean_exceedance:fixed
# train_len: 64
# pairing: half
# attn_scale: 1
# rows: all
# sink_tokens: 1
# margin: 0.05
# thresholds: exceedance > 0.01, |entropy shift| > 0.1, |sink shift| > 0.1, u-shape at U >= 0.1
layer	heads	ood_heads	mean_entropy_shift	mean_sink_shift	mean_exceedance
0	3	2	0.124591051	0.111743017	0.10880829
1	3	1	0.0639551326	0.0468408083	0.10880829
