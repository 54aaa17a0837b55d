# peentropy table: select
# version: 0.1.0
# input: ent-gqa.h5 (T 48, positions 0..47, 2 layers, model petools fixture)
# input: ent-gqa2.h5 (T 30, positions 5..34, 2 layers, model petools fixture)
# merge: rank:rank(score) layer:key head:key kv_head:key tensor:key score:key
# pe: rope
# train_len: 16
# pairing: half
# tensor: both
# broadcast: no
# stage: post
# prep: paper
# rank: 8 (asked 16, clamped to head_dim)
# pooling: each number is the mean over 2 files of the per-file numbers
# score: s (S_r)
# order: asc
# top: 8
# direction: S_r, lowest first: not monotone in spikiness: -x ln x rises for x < 1/e, so while every lambda_i < 1/e a more concentrated head has a HIGHER S_r; here every lambda_i < 1/e, so a lower S_r is a flatter spectrum: asc picks the flattest heads, not the spikiest (use --score energy or lambda1 --order desc)
rank	layer	head	kv_head	tensor	score
1	0	7	1	q	1.94480453
2	3	1	0	q	1.95437979
3	0	0	0	k	1.95559814
4	0	6	1	q	1.96129814
5	0	2	0	q	1.96383985
6	0	4	1	q	1.96532961
7	0	3	0	q	1.967792
8	3	3	0	q	1.96955446
