# peanalyze table: layers
# version: 0.1.0
# input: attn.h5 (T 128, positions 0..127, 2 layers, model petools planted attention fixture)
# merge: layer:block heads:fixed ood_heads:fixed mean_entropy_shift:fixed mean_sink_shift:fixed mean_exceedance:fixed mean_unseen_mass:fixed mean_entropy_nats_in:fixed mean_entropy_nats_beyond:fixed mean_sink_ratio:fixed
# pe: rope
# train_len: 64
# pairing: half
# attn_scale: 1
# rows: all
# sink_tokens: 1
# margin: 0.05
# thresholds: unseen mass > 0.05, exceedance > 0.01, u-shape at U >= 0.1
layer	heads	ood_heads	mean_entropy_shift	mean_sink_shift	mean_exceedance	mean_unseen_mass	mean_entropy_nats_in	mean_entropy_nats_beyond	mean_sink_ratio
0	3	3	0.124591051	0.111743017	0.10880829	0.145085632	2.43193495	3.54006121	0.302151492
1	3	3	0.0639551326	0.0468408083	0.10880829	0.455872725	3.13726697	4.11486647	0.344259424
