# pedecomp table: usage
# version: 0.1.0
# input: f32.h5 (T 40, positions 0..39, 2 layers, model petools fixture)
# merge: layer:block head:block kv_head:key tensor:block(q,k) component:key theta:key class:key norm_mean:mean(tokens) share:share(norm_mean)
# pe: rope
# train_len: 16
# pairing: half
# attn_scale: 0.35355339059327373
layer	head	kv_head	tensor	component	theta	class	norm_mean	share
2	1	0	q	0	1	hf	1.63986331	0.332622077
2	1	0	q	1	0.0464158883	tlf	1.57572665	0.319612902
2	1	0	q	2	0.00215443469	tlf	1.71451968	0.347765021


2	2	1	q	0	1	hf	1.59476981	0.346277638
2	2	1	q	1	0.0464158883	tlf	1.58095453	0.343277882
2	2	1	q	2	0.00215443469	tlf	1.42974142	0.31044448


2	0	0	k	0	1	hf	1.47631942	0.321061875
2	0	0	k	1	0.0464158883	tlf	1.49093317	0.324239994
2	0	0	k	2	0.00215443469	tlf	1.63098698	0.354698131


2	1	1	k	0	1	hf	1.61320746	0.3447624
2	1	1	k	1	0.0464158883	tlf	1.52050282	0.324950271
2	1	1	k	2	0.00215443469	tlf	1.5454759	0.330287329
