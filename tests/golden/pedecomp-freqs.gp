# pedecomp table: freqs
# version: 0.1.0
# input: f32.h5 (T 40, positions 0..39, 2 layers, model petools fixture)
# merge: component:key theta:key wavelength:key rho:key max_angle_train:key class:key
# pe: rope
# rope_theta: 10000
# train_len: 16
# rotary_dim: 6
component	theta	wavelength	rho	max_angle_train	class
0	1	6.28318531	2.54647909	15	hf
1	0.0464158883	135.367124	0.118197089	0.696238325	tlf
2	0.00215443469	2916.39628	0.00548622289	0.0323165204	tlf
