# peentropy table: heads
# version: 0.1.0
# input: ent-gqa.h5 (T 48, positions 0..47, 2 layers, model petools fixture)
# merge: layer:block head:block kv_head:key tensor:block(q,k) stage:block(pre,post,ntk) prep:key r:key score:mean(files) score_norm:mean(files) rho:mean(files) lambda1:mean(files) full:mean(files) eff_rank:mean(files) energy_r:mean(files)
# pe: rope
# train_len: 16
# pairing: half
# tensor: both
# broadcast: no
# stage: post
# prep: paper
# rank: 8 (asked 16, clamped to head_dim)
# pooling: each number is the mean over 1 file of the per-file numbers
# directions: score (S_r) and score_norm: not monotone in spikiness: -x ln x rises for x < 1/e, so while every lambda_i < 1/e a more concentrated head has a HIGHER S_r; rho: low = the top r eigenvalues are uneven (one dominates them); lambda1: high = spiky (one direction dominates); full, eff_rank: low = a few directions hold the spectrum (spiky); energy_r: high = spiky (the top r directions hold most of the spectrum)
layer	head	kv_head	tensor	stage	prep	r	score	score_norm	rho	lambda1	full	eff_rank	energy_r
0	0	0	q	post	paper	8	2.01971078	0.971275574	7.53614498	0.211189234	2.01971078	7.53614498	1
0	1	0	q	post	paper	8	1.97992813	0.952144166	7.24222248	0.210484319	1.97992813	7.24222248	1
0	2	0	q	post	paper	8	2.00508794	0.964243475	7.42674697	0.202069703	2.00508794	7.42674697	1
0	3	0	q	post	paper	8	1.97683083	0.950654677	7.21982581	0.221240971	1.97683083	7.21982581	1
0	4	1	q	post	paper	8	1.97612736	0.950316381	7.21474869	0.22205665	1.97612736	7.21474869	1
0	5	1	q	post	paper	8	1.99374173	0.9587871	7.34295776	0.208758381	1.99374173	7.34295776	1
0	6	1	q	post	paper	8	1.9892408	0.95662261	7.30998188	0.23219233	1.9892408	7.30998188	1
0	7	1	q	post	paper	8	1.98646594	0.955288188	7.28972588	0.223260833	1.98646594	7.28972588	1

0	0	0	k	post	paper	8	1.98534569	0.954749461	7.28156413	0.216109184	1.98534569	7.28156413	1
0	1	1	k	post	paper	8	2.00841814	0.965844962	7.45152073	0.185722999	2.00841814	7.45152073	1
