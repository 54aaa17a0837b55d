/* test_usage: per-pair mean norms and per-dimension means on vectors whose
 * answer is worked out by hand, for both pairings and partial rotary. */
#include <math.h>

#include "pe_test.h"
#include "pe_usage.h"

int main(void)
{
    pe_usage u;
    pe_err e;
    /* D = 5, R = 4: half pairs (0,2), (1,3); dim 4 passes through. */
    const double x[2 * 5] = {3, 1, 4, 0, -2, /* token 0: |(3,4)| = 5, |(1,0)| = 1 */
                             0, -6, 0, 8, 4}; /* token 1: |(0,0)| = 0, |(-6,8)| = 10 */
    double theta[2] = {1, 0.1};
    pe_geom half = {5, 4, 2, PE_PAIRING_HALF, theta};
    pe_usage_init(&u, 2, 5, &e);
    pe_usage_add(&u, x, 2, &half);
    PE_CHECK_NEAR(u.tokens, 2, 0, "two tokens");
    PE_CHECK_NEAR(u.norm_sum[0] / u.tokens, 2.5, 1e-15, "half: pair 0 mean norm (5 + 0) / 2");
    PE_CHECK_NEAR(u.norm_sum[1] / u.tokens, 5.5, 1e-15, "half: pair 1 mean norm (1 + 10) / 2");
    PE_CHECK_NEAR(u.dim_sum[1] / u.tokens, -2.5, 0, "signed mean of dim 1");
    PE_CHECK_NEAR(u.dim_abs[1] / u.tokens, 3.5, 0, "absolute mean of dim 1");
    PE_CHECK_NEAR(u.dim_sum[4] / u.tokens, 1, 0, "the pass dim's mean");
    double share0 = u.norm_sum[0] / (u.norm_sum[0] + u.norm_sum[1]);
    PE_CHECK_NEAR(share0, 5.0 / 16.0, 1e-15, "share of pair 0 is 2.5 / 8");
    PE_CHECK_INT(pe_usage_pair_of(&half, 3), 1, "half: dim 3 is pair 1");
    PE_CHECK_INT(pe_usage_pair_of(&half, 4), -1, "dim 4 passes through");
    pe_usage_free(&u);

    /* The same logical data interleaved: pairs (0,1), (2,3). */
    const double y[2 * 5] = {3, 4, 1, 0, -2, 0, 0, -6, 8, 4};
    pe_geom inter = {5, 4, 2, PE_PAIRING_INTERLEAVED, theta};
    pe_usage_init(&u, 2, 5, &e);
    pe_usage_add(&u, y, 2, &inter);
    PE_CHECK(u.norm_sum[0] == 5 && u.norm_sum[1] == 11, "interleaved: the same norms");
    PE_CHECK_INT(pe_usage_pair_of(&inter, 3), 1, "interleaved: dim 3 is pair 1");
    PE_CHECK_INT(pe_usage_pair_of(&inter, 0), 0, "interleaved: dim 0 is pair 0");

    /* Rotation does not change a pair's norm: add the rotated tokens. */
    double z[2 * 5];
    for (int i = 0; i < 10; i++) z[i] = y[i];
    int64_t pos[2] = {7, 8};
    pe_rope_rotate(z, 2, &inter, pos, +1);
    pe_usage r;
    pe_usage_init(&r, 2, 5, &e);
    pe_usage_add(&r, z, 2, &inter);
    PE_CHECK_REL(r.norm_sum[0], u.norm_sum[0], 1e-15, "rotated: pair 0 norm unchanged");
    PE_CHECK_REL(r.norm_sum[1], u.norm_sum[1], 1e-15, "rotated: pair 1 norm unchanged");
    pe_usage_free(&r);
    pe_usage_free(&u);
    return pe_test_done();
}
