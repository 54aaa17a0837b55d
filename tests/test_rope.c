/* test_rope.c: the geometry of the rotary embedding and the scaling
 * what-ifs (man pedecomp(1), Frequency classes, freqs).
 *
 * Every expected number is independent of the code under test: the
 * reference values of the specification, values worked out by hand, or a
 * closed form written differently from the implementation.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pe_freqs.h"
#include "pe_rope.h"
#include "pe_test.h"

static const double TWO_PI = 6.283185307179586476925286766559;
static const double PI = 3.1415926535897932384626433832795;

/* b^(-2i/R), the definition, written here rather than taken from
 * pe_rope_default_theta (whose own values are checked against 10^-i). */
static double ref_theta(double base, int R, int i)
{
    return pow(base, -2.0 * i / R);
}

static void test_pairs(void)
{
    int a, b;
    pe_rope_pair_dims(PE_PAIRING_HALF, 8, 1, &a, &b);
    PE_CHECK(a == 1 && b == 5, "half R=8 pair 1 -> (1,5)");
    pe_rope_pair_dims(PE_PAIRING_INTERLEAVED, 8, 1, &a, &b);
    PE_CHECK(a == 2 && b == 3, "interleaved R=8 pair 1 -> (2,3)");
    pe_rope_pair_dims(PE_PAIRING_HALF, 8, 3, &a, &b);
    PE_CHECK(a == 3 && b == 7, "half R=8 (D=10) pair 3 -> (3,7), inside the rotary dims");
    pe_rope_pair_dims(PE_PAIRING_INTERLEAVED, 8, 3, &a, &b);
    PE_CHECK(a == 6 && b == 7, "interleaved R=8 (D=10) pair 3 -> (6,7), inside the rotary dims");

    /* Both pairings cover the rotary dims [0, R) exactly once, so that with
     * R < D the dims [R, D) are the pass dims. */
    for (int p = 0; p < 2; p++) {
        int seen[10] = {0};
        for (int i = 0; i < 4; i++) {
            pe_rope_pair_dims((pe_pairing)p, 8, i, &a, &b);
            if (a >= 0 && a < 10) seen[a]++;
            if (b >= 0 && b < 10) seen[b]++;
        }
        int ok = 1;
        for (int d = 0; d < 10; d++) ok &= seen[d] == (d < 8 ? 1 : 0);
        PE_CHECK(ok, p == 0 ? "half R=8 D=10: pairs cover dims 0..7 once, 8..9 pass"
                            : "interleaved R=8 D=10: pairs cover dims 0..7 once, 8..9 pass");
    }

    pe_pairing pp = PE_PAIRING_HALF;
    PE_CHECK(pe_pairing_parse("interleaved", &pp) == 0 && pp == PE_PAIRING_INTERLEAVED,
             "pairing parse interleaved");
    PE_CHECK(pe_pairing_parse("half", &pp) == 0 && pp == PE_PAIRING_HALF, "pairing parse half");
    PE_CHECK(pe_pairing_parse("halves", &pp) == -1, "pairing parse refuses 'halves'");
    PE_CHECK_STR(pe_pairing_name(PE_PAIRING_HALF), "half", "pairing name half");
    PE_CHECK_STR(pe_pairing_name(PE_PAIRING_INTERLEAVED), "interleaved", "pairing name interleaved");
}

static void test_theta_classes(void)
{
    double th[4];
    pe_rope_default_theta(1e4, 8, th);
    /* 1e4^(-2i/8) = 10^(-i). */
    PE_CHECK_REL(th[0], 1.0, 1e-15, "default theta base 1e4 R 8: theta_0 = 1");
    PE_CHECK_REL(th[1], 0.1, 1e-15, "default theta base 1e4 R 8: theta_1 = 0.1");
    PE_CHECK_REL(th[2], 0.01, 1e-15, "default theta base 1e4 R 8: theta_2 = 0.01");
    PE_CHECK_REL(th[3], 0.001, 1e-15, "default theta base 1e4 R 8: theta_3 = 0.001");

    PE_CHECK_REL(pe_rope_wavelength(1.0), TWO_PI, 1e-15, "wavelength of theta 1 is 2 pi");
    PE_CHECK_REL(pe_rope_wavelength(0.5), 2 * TWO_PI, 1e-15, "wavelength of theta 0.5 is 4 pi");
    PE_CHECK(isnan(pe_rope_wavelength(0.0)), "wavelength of theta 0 is nan");
    PE_CHECK_REL(pe_rope_turns(PI / 256, 512), 1.0, 1e-15, "turns of theta pi/256 in L 512 is 1");
    PE_CHECK_REL(pe_rope_turns(TWO_PI / 100, 1000), 10.0, 1e-14, "turns of theta 2pi/100 in L 1000 is 10");
    PE_CHECK_NEAR(pe_rope_turns(0.0, 1000), 0.0, 0, "turns of theta 0 is 0");

    /* Classes, default rule (hf >= 1 turn, act >= 0.5), L 512: rho = 512 theta / 2pi. */
    const long L = 512;
    const double t_rho = TWO_PI / 512; /* theta of exactly one turn */
    PE_CHECK_INT(pe_rope_classify(5.12 * t_rho, L, NULL), PE_CLASS_HF, "rho 5.12 -> hf");
    PE_CHECK_INT(pe_rope_classify(0.75 * t_rho, L, NULL), PE_CLASS_ACT, "rho 0.75 -> act");
    PE_CHECK_INT(pe_rope_classify(0.25 * t_rho, L, NULL), PE_CLASS_TLF, "rho 0.25 -> tlf");
    PE_CHECK_INT(pe_rope_classify(1e-12, L, NULL), PE_CLASS_TLF, "tiny theta -> tlf");
    PE_CHECK_INT(pe_rope_classify(0.0, L, NULL), PE_CLASS_NOPE, "theta 0 -> nope");
    PE_CHECK_INT(pe_rope_classify(0.0, 0, NULL), PE_CLASS_NOPE, "theta 0, L 0 -> nope");
    PE_CHECK_INT(pe_rope_classify(0.5, 0, NULL), PE_CLASS_UNKNOWN, "theta 0.5, L 0 -> unknown");
    pe_class_rule rule = {2.0, 1.0};
    PE_CHECK_INT(pe_rope_classify(2.5 * t_rho, L, &rule), PE_CLASS_HF, "rule {2,1}: rho 2.5 -> hf");
    PE_CHECK_INT(pe_rope_classify(1.5 * t_rho, L, &rule), PE_CLASS_ACT, "rule {2,1}: rho 1.5 -> act");
    PE_CHECK_INT(pe_rope_classify(0.75 * t_rho, L, &rule), PE_CLASS_TLF, "rule {2,1}: rho 0.75 -> tlf");
    pe_class_rule rule2 = {1.0, 0.5};
    PE_CHECK_INT(pe_rope_classify(0.75 * t_rho, L, &rule2), PE_CLASS_ACT,
                 "explicit default rule: rho 0.75 -> act");
    PE_CHECK_STR(pe_class_name(PE_CLASS_HF), "hf", "class name hf");
    PE_CHECK_STR(pe_class_name(PE_CLASS_ACT), "act", "class name act");
    PE_CHECK_STR(pe_class_name(PE_CLASS_TLF), "tlf", "class name tlf");
    PE_CHECK_STR(pe_class_name(PE_CLASS_NOPE), "nope", "class name nope");
    PE_CHECK_STR(pe_class_name(PE_CLASS_UNKNOWN), "unknown", "class name unknown");
}

/* The specification's reference values of the classes. */
static void test_reference_classes(void)
{
    double th[64];
    pe_rope_default_theta(1e4, 128, th);
    int ok_hf = 1, ok_act = 1, ok_tlf = 1;
    for (int i = 0; i < 64; i++) {
        pe_class c = pe_rope_classify(th[i], 512, NULL);
        if (i <= 30) ok_hf &= c == PE_CLASS_HF;
        else if (i <= 35) ok_act &= c == PE_CLASS_ACT;
        else ok_tlf &= c == PE_CLASS_TLF;
    }
    PE_CHECK(ok_hf, "L 512 base 1e4 R 128: pairs 0..30 are hf");
    PE_CHECK(ok_act, "L 512 base 1e4 R 128: pairs 31..35 are act");
    PE_CHECK(ok_tlf, "L 512 base 1e4 R 128: pairs 36..63 are tlf");
    PE_CHECK_INT(pe_rope_classify(th[36], 512, NULL), PE_CLASS_TLF, "L 512 base 1e4 R 128: pair 36 is tlf");
    PE_CHECK_NEAR(th[30], 0.0133352, 0.5e-7, "theta_30 = 0.0133352 (printed digits)");
    PE_CHECK_NEAR(th[35], 0.00649382, 0.5e-8, "theta_35 = 0.00649382 (printed digits)");

    pe_rope_default_theta(5e5, 128, th);
    int ok = 1;
    for (int i = 0; i <= 34; i++) ok &= pe_rope_classify(th[i], 8192, NULL) == PE_CLASS_HF;
    PE_CHECK(ok, "L 8192 base 5e5 R 128: pairs 0..34 are hf");
    PE_CHECK(pe_rope_classify(th[35], 8192, NULL) != PE_CLASS_HF, "L 8192 base 5e5 R 128: pair 35 is not hf");
}

/* ---- rotation ---- */

static void test_rotate(void)
{
    enum { T = 6, D = 10, R = 8, P = 4 };
    const int64_t pos[T] = {1000, 1001, 1003, 1010, 1500, 4097};
    double theta[P];
    pe_rope_default_theta(1e4, R, theta);
    pe_rng rng = {12345};

    for (int p = 0; p < 2; p++) {
        const char *pn = p == 0 ? "half" : "interleaved";
        char what[160];
        pe_geom g = {D, R, P, (pe_pairing)p, theta};
        double x[T * D], x0[T * D];
        for (int k = 0; k < T * D; k++) x0[k] = x[k] = pe_rng_uniform(&rng);

        pe_rope_rotate(x, T, &g, pos, +1);
        /* Pair norms: pair i = dims (i, i+4) or (2i, 2i+1), written out here. */
        int norm_ok = 1, pass_ok = 1, moved = 0;
        double worst = 0;
        for (int m = 0; m < T; m++) {
            for (int i = 0; i < P; i++) {
                int a = p == 0 ? i : 2 * i, b = p == 0 ? i + P : 2 * i + 1;
                double n0 = hypot(x0[m * D + a], x0[m * D + b]);
                double n1 = hypot(x[m * D + a], x[m * D + b]);
                if (fabs(n1 - n0) > 1e-14 * fmax(1, n0)) norm_ok = 0;
                if (x[m * D + a] != x0[m * D + a]) moved = 1;
            }
            for (int d = R; d < D; d++) pass_ok &= x[m * D + d] == x0[m * D + d];
        }
        snprintf(what, sizeof what, "rotate %s D=10 R=8: each pair's norm is preserved", pn);
        PE_CHECK(norm_ok, what);
        snprintf(what, sizeof what, "rotate %s D=10 R=8: pass dims 8, 9 untouched", pn);
        PE_CHECK(pass_ok, what);
        snprintf(what, sizeof what, "rotate %s D=10 R=8: rotary dims do move", pn);
        PE_CHECK(moved, what);

        pe_rope_rotate(x, T, &g, pos, -1);
        for (int k = 0; k < T * D; k++) {
            double err = fabs(x[k] - x0[k]) / fmax(1.0, fabs(x0[k]));
            if (err > worst) worst = err;
        }
        snprintf(what, sizeof what, "rotate %s: +1 then -1 gives the original (worst rel err %.2g)", pn,
                 worst);
        PE_CHECK(worst <= 1e-15, what);

        /* Dot product of rotated q (position m) and k (position n) equals
         * sum_i Re(zq conj(zk) exp(j (m-n) theta_i)) + pass dims, with zq, zk
         * the unrotated pairs: the relative-position identity. */
        double q0[D], k0[D], q[D], k[D];
        for (int d = 0; d < D; d++) {
            q0[d] = q[d] = pe_rng_uniform(&rng);
            k0[d] = k[d] = pe_rng_uniform(&rng);
        }
        const int64_t pm[1] = {4099}, pk[1] = {1234};
        pe_rope_rotate(q, 1, &g, pm, +1);
        pe_rope_rotate(k, 1, &g, pk, +1);
        double dot = 0, want = 0;
        for (int d = 0; d < D; d++) dot += q[d] * k[d];
        for (int i = 0; i < P; i++) {
            int a = p == 0 ? i : 2 * i, b = p == 0 ? i + P : 2 * i + 1;
            double re = q0[a] * k0[a] + q0[b] * k0[b]; /* zq conj(zk) */
            double im = q0[b] * k0[a] - q0[a] * k0[b];
            double ang = (double)(pm[0] - pk[0]) * theta[i];
            want += re * cos(ang) - im * sin(ang);
        }
        for (int d = R; d < D; d++) want += q0[d] * k0[d];
        snprintf(what, sizeof what, "rotate %s: q(m).k(n) = sum Re(zq conj(zk) e^{j(m-n)theta}) + pass", pn);
        PE_CHECK_REL(dot, want, 1e-12, what);
    }

    /* Hand-computed: x = (1, 0), pos 3, theta 0.5 -> (cos 1.5, sin 1.5). */
    double th1[1] = {0.5};
    double v[2] = {1.0, 0.0};
    const int64_t p3[1] = {3};
    pe_geom g1 = {2, 2, 1, PE_PAIRING_HALF, th1};
    pe_rope_rotate(v, 1, &g1, p3, +1);
    PE_CHECK_NEAR(v[0], 0.0707372016677029, 1e-15, "x=(1,0) pos 3 theta 0.5 -> x_a = cos 1.5");
    PE_CHECK_NEAR(v[1], 0.9974949866040544, 1e-15, "x=(1,0) pos 3 theta 0.5 -> x_b = sin 1.5");

    /* A theta-0 (nope) pair is not rotated. */
    double th0[1] = {0.0};
    double w[2] = {0.3, -0.7};
    pe_geom g0 = {2, 2, 1, PE_PAIRING_INTERLEAVED, th0};
    pe_rope_rotate(w, 1, &g0, p3, +1);
    PE_CHECK(w[0] == 0.3 && w[1] == -0.7, "theta 0 pair is left as it is");
}

/* ---- scaling ---- */

static int parse_ok(const char *spec, pe_scaling *s)
{
    pe_err e;
    e.msg[0] = 0;
    int rc = pe_scaling_parse(spec, s, &e);
    if (rc != 0) printf("# parse '%s' failed: %s\n", spec, e.msg);
    return rc == 0;
}

static void test_parse(void)
{
    pe_scaling s;
    PE_CHECK(parse_ok("pi:4", &s) && s.kind == PE_SCALE_PI && s.factor == 4, "parse pi:4");
    PE_CHECK(parse_ok("pi:0.5", &s) && s.kind == PE_SCALE_PI && s.factor == 0.5, "parse pi:0.5 (S < 1 allowed for pi)");
    PE_CHECK(parse_ok("ntk:4", &s) && s.kind == PE_SCALE_NTK && s.factor == 4, "parse ntk:4");
    PE_CHECK(parse_ok("ntk:1", &s) && s.kind == PE_SCALE_NTK && s.factor == 1, "parse ntk:1");
    PE_CHECK(parse_ok("dynamic:4:16384", &s) && s.kind == PE_SCALE_DYNAMIC && s.factor == 4 &&
                 s.target_len == 16384,
             "parse dynamic:4:16384");
    PE_CHECK(parse_ok("yarn:4", &s) && s.kind == PE_SCALE_YARN && s.factor == 4 && s.beta_fast == 32 &&
                 s.beta_slow == 1,
             "parse yarn:4 (default betas 32, 1)");
    PE_CHECK(parse_ok("yarn:2.5:16:2", &s) && s.kind == PE_SCALE_YARN && s.factor == 2.5 &&
                 s.beta_fast == 16 && s.beta_slow == 2,
             "parse yarn:2.5:16:2");
    PE_CHECK(parse_ok("llama3:8:1:4:8192", &s) && s.kind == PE_SCALE_LLAMA3 && s.factor == 8 &&
                 s.low_freq_factor == 1 && s.high_freq_factor == 4 && s.original_len == 8192,
             "parse llama3:8:1:4:8192");
    PE_CHECK(parse_ok("pi:1e1", &s) && s.factor == 10, "parse pi:1e1");

    static const char *const bad[] = {
        "", "yarn", "yarn:", "yarn:4x", "ntk:-1", "ntk:0.5", "dynamic:4", "dynamic:4:abc",
        "llama3:8:1:4", "foo:2", "pi:nan", "pi:1e999",
        /* beyond the brief's list */
        "pi:0", "pi:inf", "pi: 4", "pi:4:5", "yarn:4:32", "yarn:4:32:1:9", "yarn:4:1:32",
        "yarn:4:32:0", "dynamic:4:0", "dynamic:4:-5", "dynamic:4:16384.5", "dynamic:0.5:8192",
        "llama3:8:4:1:8192", "llama3:8:0:4:8192", "llama3:8:1:4:0", "llama3:0.5:1:4:8192",
        "PI:4", ":4", "pi", "pi:", "llama3:8:1:4:8192:1", "dynamic:4:99999999999999999999999"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        pe_err e;
        char what[sizeof e.msg + 160];
        e.msg[0] = 0;
        memset(&s, 0, sizeof s);
        int rc = pe_scaling_parse(bad[k], &s, &e);
        char quoted[120];
        snprintf(quoted, sizeof quoted, "'%s'", bad[k]);
        snprintf(what, sizeof what, "parse refuses '%s' (%s)", bad[k], e.msg);
        PE_CHECK(rc == -1 && strstr(e.msg, quoted) != NULL && e.kind == PE_ERRK_USAGE, what);
    }

    pe_err e;
    pe_scaling_parse("yarn:x", &s, &e);
    PE_CHECK_STR(e.msg, "--scale 'yarn:x': factor is not a number", "message for yarn:x");
    pe_scaling_parse("foo:2", &s, &e);
    PE_CHECK(strstr(e.msg, "unknown method 'foo'") != NULL, "message for foo:2 names the method");
    pe_scaling_parse("dynamic:4", &s, &e);
    PE_CHECK(strstr(e.msg, "target length") != NULL && strstr(e.msg, "missing") != NULL,
             "message for dynamic:4 says the target length is missing");
    pe_scaling_parse("pi:1e999", &s, &e);
    PE_CHECK(strstr(e.msg, "out of range") != NULL, "message for pi:1e999 says out of range");
    pe_scaling_parse("pi:nan", &s, &e);
    PE_CHECK(strstr(e.msg, "not finite") != NULL, "message for pi:nan says not finite");
    pe_scaling_parse("ntk:0.5", &s, &e);
    PE_CHECK(strstr(e.msg, ">= 1") != NULL, "message for ntk:0.5 says factor >= 1");
}

static int apply(const char *spec, int R, double base, long L, const double *theta, double *out,
                 pe_scale_info *info)
{
    pe_scaling s;
    pe_err e;
    if (!parse_ok(spec, &s)) return -1;
    int rc = pe_scaling_apply(&s, R, base, L, theta, out, info, &e);
    if (rc != 0) printf("# apply '%s' failed: %s\n", spec, e.msg);
    return rc;
}

static void test_pi_ntk_dynamic(void)
{
    enum { R = 128, P = 64 };
    double th[P], out[P];
    pe_scale_info info;

    /* PI divides every theta by S, whatever theta is (here: not b^(-2i/R)). */
    pe_rng rng = {7};
    for (int i = 0; i < P; i++) th[i] = fabs(pe_rng_uniform(&rng));
    th[5] = 0.0;
    PE_CHECK(apply("pi:3", R, 1e4, 4096, th, out, &info) == 0, "apply pi:3");
    int ok = 1;
    for (int i = 0; i < P; i++) ok &= fabs(out[i] - th[i] / 3.0) <= 1e-16 * th[i];
    PE_CHECK(ok, "pi:3 divides every theta by 3");
    PE_CHECK_INT(info.target_len, 3 * 4096, "pi:3 L 4096: target length 12288");
    PE_CHECK(info.base_scaled == 1e4 && info.attn_factor == 1, "pi:3: base and attention factor unchanged");
    PE_CHECK(apply("pi:3", R, 1e4, 0, th, out, &info) == 0 && info.target_len == 0,
             "pi:3 without L: frequencies still computed, target length 0 (unknown)");

    /* Static NTK, reference: s=4, R 128, base 1e4 -> base' ~ 40890. */
    PE_CHECK(apply("ntk:4", R, 1e4, 4096, NULL, out, &info) == 0, "apply ntk:4");
    PE_CHECK(fabs(info.base_scaled - 40890) < 1, "ntk:4 R 128 base 1e4: base' ~ 40890");
    PE_CHECK_INT(lround(info.base_scaled), 40890, "ntk:4: round(base') == 40890");
    PE_CHECK_INT(info.target_len, 16384, "ntk:4 L 4096: target length 16384");
    /* Closed form: base'^(-2i/R) = b^(-2i/R) * S^(-2i/(R-2)); pair 0 stays
     * 1 and the last pair (i = (R-2)/2) is exactly theta/S. */
    ok = 1;
    for (int i = 0; i < P; i++) {
        double want = ref_theta(1e4, R, i) * pow(4.0, -2.0 * i / (R - 2));
        ok &= fabs(out[i] - want) <= 1e-13 * want;
    }
    PE_CHECK(ok, "ntk:4: theta'_i = theta_i * 4^(-2i/126) for every pair");
    PE_CHECK_REL(out[0], 1.0, 1e-15, "ntk:4: theta'_0 = 1");
    PE_CHECK_REL(out[63] / ref_theta(1e4, R, 63), 0.25, 1e-13, "ntk:4: theta'_63 = theta_63 / 4");

    /* Dynamic NTK: T <= L leaves theta unchanged. */
    ok = 1;
    PE_CHECK(apply("dynamic:4:2048", R, 1e4, 4096, NULL, out, &info) == 0, "apply dynamic:4:2048 L 4096");
    for (int i = 0; i < P; i++) ok &= fabs(out[i] - ref_theta(1e4, R, i)) <= 1e-15 * ref_theta(1e4, R, i);
    PE_CHECK(ok, "dynamic T 2048 <= L 4096: theta unchanged");
    PE_CHECK(info.base_scaled == 1e4, "dynamic T < L: base unchanged");
    PE_CHECK_INT(info.target_len, 2048, "dynamic: target length is T");
    PE_CHECK(apply("dynamic:4:4096", R, 1e4, 4096, NULL, out, &info) == 0 && info.base_scaled == 1e4,
             "dynamic T == L: base unchanged");

    /* T > L: static NTK with the effective factor 4*16384/4096 - 3 = 13. */
    PE_CHECK(apply("dynamic:4:16384", R, 1e4, 4096, NULL, out, &info) == 0, "apply dynamic:4:16384 L 4096");
    PE_CHECK_REL(info.base_scaled, 1e4 * exp(128.0 / 126.0 * log(13.0)), 1e-14,
                 "dynamic T 16384 L 4096: base' = b * 13^(128/126)");
    ok = 1;
    for (int i = 0; i < P; i++) {
        double want = ref_theta(1e4, R, i) * pow(13.0, -2.0 * i / (R - 2));
        ok &= fabs(out[i] - want) <= 1e-13 * want;
    }
    PE_CHECK(ok, "dynamic T 16384 L 4096: theta' = static NTK with factor 13");
    PE_CHECK_INT(info.target_len, 16384, "dynamic: target length 16384");

    /* Failures. */
    pe_scaling s;
    pe_err e;
    parse_ok("ntk:4", &s);
    e.msg[0] = 0;
    PE_CHECK(pe_scaling_apply(&s, 2, 1e4, 4096, NULL, out, NULL, &e) == -1 && strstr(e.msg, "R/(R-2)"),
             "ntk with R 2 fails and names the exponent R/(R-2)");
    parse_ok("dynamic:4:16384", &s);
    e.msg[0] = 0;
    PE_CHECK(pe_scaling_apply(&s, 128, 1e4, 0, NULL, out, NULL, &e) == -1 && strstr(e.msg, "training length"),
             "dynamic without L fails and says it needs the training length");
    PE_CHECK(pe_scaling_apply(&s, 2, 1e4, 4096, NULL, out, NULL, &e) == -1, "dynamic with R 2 fails");
    PE_CHECK(pe_scaling_apply(&s, 127, 1e4, 4096, NULL, out, NULL, &e) == -1, "odd rotary dim fails");
    parse_ok("ntk:4", &s);
    PE_CHECK(pe_scaling_apply(&s, 128, 1.0, 4096, NULL, out, NULL, &e) == -1, "ntk with base 1 fails");
    parse_ok("pi:2", &s);
    PE_CHECK(pe_scaling_apply(&s, 128, 1e4, 4096, NULL, out, NULL, &e) == -1, "pi without theta fails");
    th[3] = NAN;
    PE_CHECK(pe_scaling_apply(&s, 128, 1e4, 4096, th, out, NULL, &e) == -1, "pi with a nan theta fails");
}

static void test_yarn(void)
{
    enum { R = 128, P = 64 };
    double out[P];
    pe_scale_info info;

    /* Reference: base 1e4, R 128, L 4096 -> low 20, high 46. */
    PE_CHECK(apply("yarn:4", R, 1e4, 4096, NULL, out, &info) == 0, "apply yarn:4");
    PE_CHECK(info.corr_low == 20, "yarn base 1e4 R 128 L 4096: correction low 20");
    PE_CHECK(info.corr_high == 46, "yarn base 1e4 R 128 L 4096: correction high 46");
    PE_CHECK_REL(info.attn_factor, 1.138629436111989, 1e-15, "yarn:4: attention factor 0.1 ln 4 + 1");
    PE_CHECK(info.base_scaled == 1e4, "yarn: base unchanged");
    PE_CHECK_INT(info.target_len, 16384, "yarn:4 L 4096: target length 16384");
    int ok_lo = 1, ok_hi = 1, ok_mid = 1, ok_ramp = 1;
    for (int i = 0; i < P; i++) {
        double t = ref_theta(1e4, R, i);
        if (i < 20) {
            ok_lo &= fabs(out[i] - t) <= 1e-15 * t;
        } else if (i >= 46) {
            ok_hi &= fabs(out[i] - t / 4) <= 1e-15 * t;
        } else {
            ok_mid &= i == 20 || (out[i] > t / 4 && out[i] < t);
            /* weight of the original frequency: 1 - (i - 20) / 26 */
            double wgt = (out[i] - t / 4) / (t - t / 4);
            ok_ramp &= fabs(wgt - (1.0 - (i - 20) / 26.0)) < 1e-12;
        }
    }
    PE_CHECK(ok_lo, "yarn:4: pairs below low (0..19) keep theta (extrapolated)");
    PE_CHECK(ok_hi, "yarn:4: pairs at or above high (46..63) are exactly theta/4");
    PE_CHECK(ok_mid, "yarn:4: pairs 21..45 strictly between theta/4 and theta");
    PE_CHECK(ok_ramp, "yarn:4: blend weight is linear, 1 - (i-20)/26");

    /* Custom betas: find(16) = 25.76 -> 25, find(2) = 40.21 -> 41 (worked out
     * separately). */
    PE_CHECK(apply("yarn:8:16:2", R, 1e4, 4096, NULL, out, &info) == 0, "apply yarn:8:16:2");
    PE_CHECK(info.corr_low == 25 && info.corr_high == 41, "yarn:8:16:2 L 4096: correction range 25, 41");
    PE_CHECK_REL(info.attn_factor, 1.2079441541679836, 1e-15, "yarn:8: attention factor 0.1 ln 8 + 1");
    PE_CHECK_REL(out[24], ref_theta(1e4, R, 24), 1e-15, "yarn:8:16:2: pair 24 unchanged");
    PE_CHECK_REL(out[41], ref_theta(1e4, R, 41) / 8, 1e-15, "yarn:8:16:2: pair 41 is theta/8");

    /* Clamping: L 1e9 -> find(32) = 107.15, find(1) = 131.23 -> ceil 132,
     * clamped to R-1 = 127; every pair index (< 64) is below low. */
    PE_CHECK(apply("yarn:4", R, 1e4, 1000000000L, NULL, out, &info) == 0, "apply yarn:4 L 1e9");
    PE_CHECK(info.corr_low == 107 && info.corr_high == 127, "yarn L 1e9: range 107, 127 (high clamped to R-1)");
    int ok = 1;
    for (int i = 0; i < P; i++) ok &= fabs(out[i] - ref_theta(1e4, R, i)) <= 1e-15 * ref_theta(1e4, R, i);
    PE_CHECK(ok, "yarn L 1e9: every pair keeps theta");

    /* S = 1: nothing changes, attention factor 1. */
    PE_CHECK(apply("yarn:1", R, 1e4, 4096, NULL, out, &info) == 0 && info.attn_factor == 1,
             "yarn:1: attention factor 1");
    ok = 1;
    for (int i = 0; i < P; i++) ok &= fabs(out[i] - ref_theta(1e4, R, i)) <= 1e-15 * ref_theta(1e4, R, i);
    PE_CHECK(ok, "yarn:1: theta unchanged");

    pe_scaling s;
    pe_err e;
    parse_ok("yarn:4", &s);
    e.msg[0] = 0;
    PE_CHECK(pe_scaling_apply(&s, R, 1e4, 0, NULL, out, NULL, &e) == -1 && strstr(e.msg, "training length"),
             "yarn without L fails and says it needs the training length");
}

static void test_llama3(void)
{
    enum { R = 128, P = 64 };
    double th[P], out[P];
    pe_scale_info info;
    for (int i = 0; i < P; i++) th[i] = ref_theta(5e5, R, i);
    PE_CHECK(apply("llama3:8:1:4:8192", R, 5e5, 131072, th, out, &info) == 0, "apply llama3:8:1:4:8192");
    PE_CHECK_INT(info.n_kept, 29, "llama3 reference: 29 pairs kept");
    PE_CHECK_INT(info.n_smoothed, 6, "llama3 reference: 6 pairs smoothed");
    PE_CHECK_INT(info.n_divided, 29, "llama3 reference: 29 pairs divided by 8");
    PE_CHECK_INT(info.target_len, 65536, "llama3: target length 8 x 8192");
    PE_CHECK(info.base_scaled == 5e5 && info.attn_factor == 1, "llama3: base and attention factor unchanged");
    int ok_k = 1, ok_s = 1, ok_d = 1;
    for (int i = 0; i < P; i++) {
        /* wavelength vs 8192/4 = 2048 and 8192/1 = 8192, computed here. */
        double wl = TWO_PI / th[i];
        if (wl < 2048) ok_k &= i <= 28 && out[i] == th[i];
        else if (wl > 8192) ok_d &= i >= 35 && fabs(out[i] - th[i] / 8) <= 1e-16 * th[i];
        else ok_s &= i >= 29 && i <= 34 && out[i] > th[i] / 8 && out[i] < th[i];
    }
    PE_CHECK(ok_k, "llama3: kept pairs (0..28) unchanged");
    PE_CHECK(ok_d, "llama3: divided pairs (35..63) exactly theta/8");
    PE_CHECK(ok_s, "llama3: smoothed pairs (29..34) strictly between theta/8 and theta");
}

/* pe_freqs_whatif: a --pe spec on the frequencies alone (pedecomp -t
 * freqs), with and without a file. */
static void test_freqs_whatif(void)
{
    enum { R = 16, P = 8 };
    double th[P], out[P];
    int64_t pos[3] = {0, 1, 8191};
    pe_meta file = {0};
    pe_scale_info info;
    pe_whatif *w = NULL;
    pe_err e;
    for (int i = 0; i < P; i++) th[i] = ref_theta(1e4, R, i);
    pe_freqs_model fm = {th, R, 1e4, 4096, NULL, NULL};

    /* pi:4 divides every frequency by 4; the model is meant for 4 L. */
    PE_CHECK(pe_whatif_parse("--pe", "pi:4", &w, &e) == 0, "parse --pe pi:4");
    PE_CHECK(pe_freqs_whatif(&fm, w, "--pe", out, &info, &e) == 0, "freqs what-if pi:4 without a file");
    int ok = 1;
    for (int i = 0; i < P; i++) ok &= fabs(out[i] - ref_theta(1e4, R, i) / 4) <= 1e-16 * th[i];
    PE_CHECK(ok, "freqs pi:4: theta_i / 4 for every pair");
    PE_CHECK_INT(info.target_len, 4 * 4096, "freqs pi:4 L 4096: target length 16384");
    pe_whatif_free(w);

    /* ntk:4 rebuilds from the base: theta_i * 4^(-2i/(R-2)). */
    PE_CHECK(pe_whatif_parse("--pe", "ntk:4", &w, &e) == 0, "parse --pe ntk:4");
    PE_CHECK(pe_freqs_whatif(&fm, w, "--pe", out, &info, &e) == 0, "freqs what-if ntk:4");
    ok = 1;
    for (int i = 0; i < P; i++) ok &= fabs(out[i] - th[i] * pow(4.0, -2.0 * i / (R - 2))) <= 1e-13 * th[i];
    PE_CHECK(ok, "freqs ntk:4: theta_i * 4^(-2i/14)");
    PE_CHECK_REL(info.base_scaled, 1e4 * pow(4.0, 16.0 / 14.0), 1e-13, "freqs ntk:4: base' = b * 4^(16/14)");
    pe_whatif_free(w);

    /* dynamic:S takes its length from the file: its last position + 1. */
    PE_CHECK(pe_whatif_parse("--pe", "dynamic:2", &w, &e) == 0, "parse --pe dynamic:2");
    e.msg[0] = 0;
    PE_CHECK(pe_freqs_whatif(&fm, w, "--pe", out, &info, &e) == -1 && e.kind == PE_ERRK_USAGE &&
                 strstr(e.msg, "--pe 'dynamic:2': ") == e.msg && strstr(e.msg, "dynamic:S:T"),
             "freqs dynamic:S without a file: a usage error asking for dynamic:S:T");
    file.T = 3;
    file.positions = pos;
    fm.file = &file;
    fm.path = "x.h5";
    PE_CHECK(pe_freqs_whatif(&fm, w, "--pe", out, &info, &e) == 0, "freqs dynamic:2 with a file");
    PE_CHECK_INT(info.target_len, 8192, "freqs dynamic:2: target length is the file's last position + 1");
    /* effective factor 2 * 8192 / 4096 - 1 = 3 */
    PE_CHECK_REL(info.base_scaled, 1e4 * pow(3.0, 16.0 / 14.0), 1e-13, "freqs dynamic:2 T 8192 L 4096: factor 3");
    PE_CHECK_REL(out[P - 1], th[P - 1] / 3, 1e-13, "freqs dynamic:2: the last pair divided by 3");
    pe_whatif_free(w);

    /* A scaling the rotary dims do not allow names the option and the file. */
    PE_CHECK(pe_whatif_parse("--scale", "ntk:4", &w, &e) == 0, "parse --scale ntk:4");
    fm.rotary_dim = 2;
    e.msg[0] = 0;
    PE_CHECK(pe_freqs_whatif(&fm, w, "--scale", out, &info, &e) == -1 && strstr(e.msg, "--scale 'ntk:4': ") == e.msg &&
                 strstr(e.msg, " in x.h5"),
             "freqs ntk:4 with R 2 fails naming --scale and the file");
    pe_whatif_free(w);
}

int main(void)
{
    test_pairs();
    test_theta_classes();
    test_reference_classes();
    test_rotate();
    test_parse();
    test_pi_ntk_dynamic();
    test_yarn();
    test_llama3();
    test_freqs_whatif();
    return pe_test_done();
}
