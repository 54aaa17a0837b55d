# peanalyze table: heads
# version: 0.1.0
# input: attn.h5 (T 128, positions 0..127, 2 layers, model petools planted attention fixture)
# merge: layer:block head:block kv_head:key rows_in:fixed rows_beyond:fixed sink_in:fixed sink_beyond:fixed entropy_in:fixed entropy_beyond:fixed u_in:fixed label_in:fixed u_all:fixed label_all:fixed exceedance:fixed ood:fixed unseen_mass:fixed entropy_nats_in:fixed entropy_nats_beyond:fixed sink_ratio:fixed
# pe: rope
# train_len: 64
# pairing: half
# attn_scale: 1
# rows: all
# sink_tokens: 1
# margin: 0.05
# thresholds: unseen mass > 0.05, exceedance > 0.01, u-shape at U >= 0.1
layer	head	kv_head	rows_in	rows_beyond	sink_in	sink_beyond	entropy_in	entropy_beyond	u_in	label_in	u_all	label_all	exceedance	ood	unseen_mass	entropy_nats_in	entropy_nats_beyond	sink_ratio
0	0	0	64	64	0.0631110714	0.0107415113	0.958306289	0.95438201	0.995031806	u-shape	0.996360162	u-shape	0	1	0.304063982	3.10371721	4.34299585	0.17020011
0	1	1	64	64	0.0612103175	0.000138101288	0.974674257	0.846054189	0	decay	0	decay	0.32642487	1	0.00709593669	3.15767809	3.84322737	0.00225617663
0	2	2	64	64	0.833781066	0.611993792	0.291677879	0.532906686	0	rise	0	rise	0	1	0.124096977	1.03440955	2.43396042	0.733998188


1	0	0	64	64	0.0631110714	0.0107415113	0.958306289	0.95438201	0.995031806	u-shape	0.996360162	u-shape	0	1	0.304063982	3.10371721	4.34299585	0.17020011
1	1	1	64	64	0.0678104187	0.0107607894	0.988633953	0.986999294	0.995031806	u-shape	0.996360162	u-shape	0	1	0.303275328	3.21500568	4.49148732	0.158689323
1	2	2	64	64	0.105039052	0.0739358162	0.958403928	0.772097469	0	rise	0	rise	0.32642487	1	0.760278866	3.09307802	3.51011625	0.703888839
