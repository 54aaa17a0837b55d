# peanalyze table: heads
# version: 0.1.0
# input: attn.h5 (T 128, positions 0..127, 2 layers, model petools planted attention fixture)
# merge: layer:block head:block kv_head:key rows_in:fixed rows_beyond:fixed sink_in:fixed sink_beyond:fixed entropy_in:fixed entropy_beyond:fixed u_in:fixed label_in:fixed u_all:fixed label_all:fixed exceedance:fixed ood:fixed
# train_len: 64
# pairing: half
# attn_scale: 1
# rows: all
# sink_tokens: 1
# margin: 0.05
# thresholds: exceedance > 0.01, |entropy shift| > 0.1, |sink shift| > 0.1, u-shape at U >= 0.1
layer	head	kv_head	rows_in	rows_beyond	sink_in	sink_beyond	entropy_in	entropy_beyond	u_in	label_in	u_all	label_all	exceedance	ood
0	0	0	64	64	0.0631110714	0.0107415113	0.958306289	0.95438201	0.999167868	u-shape	0.993403565	u-shape	0	0
0	1	1	64	64	0.0612103175	0.000138101288	0.974674257	0.846054189	0	decay	0	decay	0.32642487	1
0	2	2	64	64	0.833781066	0.611993792	0.291677879	0.532906686	0	rise	0	rise	0	1


1	0	0	64	64	0.0631110714	0.0107415113	0.958306289	0.95438201	0.999167868	u-shape	0.993403565	u-shape	0	0
1	1	1	64	64	0.0678104187	0.0107607894	0.988633953	0.986999294	0.999167868	u-shape	0.993403565	u-shape	0	0
1	2	2	64	64	0.105039052	0.0739358162	0.958403928	0.772097469	0	rise	0	rise	0.32642487	1
