#!/usr/bin/python3
"""bench/reference.py: the straightforward numpy way to compute what the
petools tools compute, for `make bench` to time and to check against.

    reference.py profile FILE -o OUT [--method fft|direct] [--bins B] [-l LIST] [-H LIST]
    reference.py heads   FILE -o OUT [-l LIST] [-H LIST] [-L N] [--sink-tokens S] [--margin X]
                         [--unseen-threshold X] [--exceed-threshold X] [--entropy-threshold X]
                         [--sink-threshold X] [--u-threshold X]
    reference.py entropy FILE -o OUT [-l LIST] [-H LIST] [-r R]

Each writes a tab-separated table with the columns of the tool's own table
(pedecomp -t profile, peanalyze -t heads, peentropy -t heads with the default
post stage and paper preparation), one row for each of the tool's rows, with
numbers as %.9g: the same output, so that the timing compares like with like.
The last line on standard error is

    reference: wall W cpu C maxrss_kb M base_rss_kb B

W and C (seconds) are counted from just after `import numpy, h5py` to the
end of writing OUT, so they include reading and converting the file; M is the
process's peak resident memory (imports included), B the resident memory
right after the imports.

What each mode does (the way a researcher would write it with numpy):
  profile --method fft    per head, the complex pair signals zq = q_a + j q_b
                          and zk (T x P), zero-padded to N >= 2T - 1 (the same
                          N = 2^a 3^b 5^c as pedecomp) and transformed with
                          np.fft along the tokens (all P pairs in one call),
                          r(d) = ifft(FQ conj(FK))[d], then
                          C_i(d) = s Re(r_i(d) exp(j d theta_i)); binned by
                          pedecomp's rule (sum of sums / sum of counts).
                          A key head's transform is computed once and reused
                          by the query heads that share it.
  profile --method direct the per-distance direct sums
                          r_i(d) = sum_m zq_{m,i} conj(zk_{m-d,i}), one numpy
                          vector operation per distance: O(T^2 P).
  heads                   the whole T x T logit matrix per head (rotated q and
                          k, q k^T, softcap, causal mask, softmax), then per
                          row the sink mass, the entropy -sum p ln p in nats
                          and normalised by ln(m+1), and the unseen-distance
                          mass (keys n >= S with p_m - p_n >= L); their means
                          over the in-train (p_m < L) and beyond rows; the
                          mean logit per distance over the pairs whose key is
                          not a sink (diagonal sums of the block of rows and
                          keys >= S; binned by distance in positions when the
                          positions have gaps) for the U-scores; the
                          exceedance against the in-train range; the ood
                          flag (unseen mass or exceedance above its
                          threshold, and the optional entropy and sink shift
                          rules).  The definitions: man peanalyze(1), What is
                          measured and TABLES heads; analyses.md 4, 5 and 8.
  entropy                 per head and tensor, X rotated by the positions,
                          G = X^T X, G / trace, np.linalg.eigvalsh, then S_r,
                          S_r / ln D, rho_r, lambda_1, S_D, exp(S_D) and
                          energy_r (man peentropy(1), analyses.md 6).

Limits: one file (no pooling), every row (no --rows), the default stage
and preparation of peentropy (post, paper), the file's own rotation (no
--pe); the profile mode needs contiguous positions (positions p_0 + m), the
heads and entropy modes take any increasing positions.  Dims >= rotary_dim
pass through unrotated.  This is a benchmark reference, not a second
implementation of every option.
"""
import argparse
import sys
import time
import resource

import numpy as np
import h5py

T0_WALL = time.perf_counter()
T0_CPU = time.process_time()
BASE_RSS = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

TWO_PI = 6.283185307179586476925286766559


def die(msg, status=2):
    sys.stderr.write("reference.py: %s\n" % msg)
    sys.exit(status)


def parse_list(s):
    out = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return sorted(set(out))


def attr(f, name, default=None):
    if name not in f.attrs:
        return default
    v = f.attrs[name]
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    return v


class Dump:
    """The attributes of a qkdump file and a reader of one head at a time."""

    def __init__(self, path):
        self.f = h5py.File(path, "r")
        f = self.f
        self.H = int(attr(f, "n_heads"))
        self.KV = int(attr(f, "n_kv_heads"))
        self.D = int(attr(f, "head_dim"))
        self.R = int(attr(f, "rotary_dim", self.D))
        self.P = self.R // 2
        self.base = float(attr(f, "rope_theta", 10000.0))
        self.pairing = attr(f, "rope_pairing", "half")
        if isinstance(self.pairing, bytes):
            self.pairing = self.pairing.decode()
        self.L = int(attr(f, "train_len", 0))
        self.scale = float(attr(f, "attn_scale", 1.0 / np.sqrt(self.D)))
        self.softcap = float(attr(f, "attn_softcap", 0.0))
        if "tokens/positions" in f:
            self.pos = f["tokens/positions"][...].astype(np.int64)
        else:
            self.pos = None
        if "rope/inv_freq" in f:
            self.theta = f["rope/inv_freq"][...].astype(np.float64)
        else:
            i = np.arange(self.P, dtype=np.float64)
            self.theta = np.array([self.base ** (-2.0 * k / self.R) for k in i])
        self.layers = []
        for name in f["layers"]:
            g = f["layers"][name]
            self.layers.append((int(attr(g, "index", int(name))), name))
        self.layers.sort()
        first = f["layers"][self.layers[0][1]]["q"]
        self.T = first.shape[1]
        if self.pos is None:
            self.pos = np.arange(self.T, dtype=np.int64)
        self.contiguous = bool(np.array_equal(self.pos, self.pos[0] + np.arange(self.T)))
        self.group = self.H // self.KV
        if self.pairing == "half":
            self.a = np.arange(self.P)
            self.b = self.a + self.P
        else:
            self.a = 2 * np.arange(self.P)
            self.b = self.a + 1

    def layer_theta(self, name):
        g = self.f["layers"][name]
        if int(attr(g, "rope", 1)) == 0:
            return np.zeros(self.P)
        if "inv_freq" in g:
            return g["inv_freq"][...].astype(np.float64)
        return self.theta

    def read(self, name, tensor, head):
        """One head as a T x D float64 array.  bfloat16 is read as its raw
        16-bit patterns (memory type = file type, as scripts/pe-dump writes
        it) and widened with a shift; other types through h5py."""
        ds = self.f["layers"][name][tensor]
        ft = ds.id.get_type()
        if ft.get_class() == h5py.h5t.FLOAT and ft.get_size() == 2 and ft.get_fields()[2] == 8:
            # bfloat16: exponent of 8 bits
            sel = h5py.h5s.create_simple(ds.shape)
            sel.select_hyperslab((head, 0, 0), (1, ds.shape[1], ds.shape[2]))
            mem = h5py.h5s.create_simple((ds.shape[1], ds.shape[2]))
            raw = np.empty((ds.shape[1], ds.shape[2]), dtype=np.uint16)
            ds.id.read(mem, sel, raw, mtype=ft)
            return (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        return ds[head].astype(np.float64)


def fft_size(n):
    """The smallest 2^a 3^b 5^c >= n (as pedecomp pads)."""
    best = None
    p2 = 1
    while True:
        p3 = p2
        while True:
            p5 = p3
            while p5 < n:
                p5 *= 5
            if best is None or p5 < best:
                best = p5
            if p3 >= n:
                break
            p3 *= 3
        if p2 >= n:
            break
        p2 *= 2
    return best


def bin_edges(n, bins):
    nb = n if bins == 0 or n <= bins else bins
    b = np.arange(nb + 1, dtype=np.int64)
    edges = (b * n) // nb
    return edges[:-1], edges[1:] - 1


def classify(theta, L):
    if theta == 0:
        return "nope"
    if L <= 0:
        return "unknown"
    rho = L * theta / TWO_PI
    if rho >= 1:
        return "hf"
    if rho >= 0.5:
        return "act"
    return "tlf"


def g9(x):
    if x != x or x in (float("inf"), float("-inf")):
        return "nan"
    s = "%.9g" % x
    return "0" if s == "-0" else s


def selected(dump, args):
    layers = [l for l in dump.layers if args.layers is None or l[0] in args.layers]
    heads = list(range(dump.H)) if args.heads is None else args.heads
    return layers, heads


# ---------------------------------------------------------------- profile

def profile(dump, args, out):
    if not dump.contiguous:
        die("positions are not contiguous: the profile mode handles contiguous positions only")
    T, P, D, R = dump.T, dump.P, dump.D, dump.R
    s = dump.scale
    N = fft_size(2 * T - 1)
    lo, hi = bin_edges(T, args.bins)
    counts = (T - np.arange(T)).astype(np.float64)
    npairs = np.add.reduceat(counts, lo)
    d = np.arange(T, dtype=np.float64)
    out.write("layer\thead\tkv_head\tcomponent\ttheta\tclass\tdelta_lo\tdelta_hi\tn_pairs\tmean_logit\n")
    pass_dims = list(range(R, D))
    layers, heads = selected(dump, args)
    for index, name in layers:
        theta = dump.layer_theta(name)
        phase = np.exp(1j * np.outer(theta, d))  # P x T: exp(j d theta_i)
        cls = [classify(t, dump.L) for t in theta]
        kcache = {}
        for h in heads:
            kv = h // dump.group
            q = dump.read(name, "q", h)
            if kv not in kcache:
                kcache.clear()
                k = dump.read(name, "k", kv)
                zk = (k[:, dump.a] + 1j * k[:, dump.b]).T.copy()  # P x T
                kpass = k[:, pass_dims].T.copy() if pass_dims else None
                if args.method == "fft":
                    kcache[kv] = (np.fft.fft(zk, n=N, axis=1),
                                  np.fft.fft(kpass, n=N, axis=1) if pass_dims else None)
                else:
                    kcache[kv] = (zk, kpass)
            zq = (q[:, dump.a] + 1j * q[:, dump.b]).T.copy()
            qpass = q[:, pass_dims].T.copy() if pass_dims else None
            K, Kp = kcache[kv]
            if args.method == "fft":
                r = np.fft.ifft(np.fft.fft(zq, n=N, axis=1) * np.conj(K), axis=1)[:, :T]
                rp = None
                if pass_dims:
                    rp = np.fft.ifft((np.fft.fft(qpass, n=N, axis=1) * np.conj(Kp)).sum(0))[:T].real
            else:
                r = np.empty((P, T), dtype=np.complex128)
                rp = np.empty(T) if pass_dims else None
                zkc = np.conj(K)
                for dd in range(T):
                    r[:, dd] = (zq[:, dd:] * zkc[:, :T - dd]).sum(axis=1)
                    if pass_dims:
                        rp[dd] = (qpass[:, dd:] * Kp[:, :T - dd]).sum()
            comp = s * (r * phase).real  # P x T per-distance sums
            rows = [comp]
            names = [(str(i), g9(theta[i]), cls[i]) for i in range(P)]
            if pass_dims:
                rows.append((s * rp)[None, :])
                names.append(("pass", "nan", "pass"))
            total = comp.sum(axis=0)
            if pass_dims:
                total = total + s * rp
            rows.append(total[None, :])
            names.append(("total", "nan", "total"))
            sums = np.vstack(rows)
            means = np.add.reduceat(sums, lo, axis=1) / npairs
            pre = "%d\t%d\t%d\t" % (index, h, kv)
            lines = []
            for c, (cn, th, cl) in enumerate(names):
                p2 = pre + cn + "\t" + th + "\t" + cl + "\t"
                mc = means[c]
                lines.append("\n".join(p2 + "%d\t%d\t%d\t%s" % (lo[b], hi[b], npairs[b], g9(mc[b]))
                                       for b in range(len(lo))))
            out.write("\n".join(lines))
            out.write("\n")


# ---------------------------------------------------------------- heads

_TRIG = {}


def rotate(x, theta, dump):
    """RoPE at the file's positions; cos and sin are computed once per set of
    frequencies (as a model's rotary cache is) and reused for every head."""
    key = theta.tobytes()
    if key not in _TRIG:
        _TRIG.clear()
        ang = np.outer(dump.pos.astype(np.float64), theta)  # T x P
        _TRIG[key] = (np.cos(ang), np.sin(ang))
    c, sn = _TRIG[key]
    if dump.pairing == "half":
        a, b = slice(0, dump.P), slice(dump.P, dump.R)
    else:
        a, b = slice(0, dump.R, 2), slice(1, dump.R, 2)
    xa, xb = x[:, a], x[:, b]
    y = x.copy()
    y[:, a] = xa * c - xb * sn
    y[:, b] = xa * sn + xb * c
    return y


def u_score(sums, counts):
    """The U-score of the curve sums[d] / counts[d] (analyses.md section 5):
    distances 1..n-1 (n = len(sums)) cut into 32 bins by the binning rule,
    pair-weighted bin means, bins without pairs skipped; near, far = the
    first and last bin kept, trough = the lowest of the others."""
    n = len(sums)
    if n < 2:
        return float("nan"), False
    m = n - 1
    nb = min(m, 32)
    g = []
    for b in range(nb):
        lo = (b * m) // nb + 1
        hi = ((b + 1) * m) // nb  # inclusive, shifted by 1
        c = counts[lo:hi + 1]
        if not (c > 0).any():
            continue
        g.append(sums[lo:hi + 1].sum() / c.sum())
    if len(g) < 3:
        return float("nan"), False
    g = np.array(g)
    near, far = g[0], g[-1]
    trough = g[1:-1].min()
    rng = g.max() - g.min()
    if rng == 0:
        return 0.0, near > far
    u = min(near - trough, far - trough) / rng
    return float(min(max(u, 0.0), 1.0)), near > far


def label(u, near_gt_far, threshold):
    if u != u:
        return "none"
    if u >= threshold:
        return "u-shape"
    return "decay" if near_gt_far else "rise"


def trim(sums, counts):
    """The per-distance arrays up to the largest distance that has a pair."""
    nz = np.flatnonzero(counts > 0)
    n = int(nz[-1]) + 1 if len(nz) else 0
    return sums[:n], counts[:n]


def nonsink_curve(logits, pos, rows, S, contiguous):
    """Sum and count of the logits per distance p_m - p_n over the causal
    pairs of the query rows 0 .. rows-1 whose key is not a sink (n >= S)."""
    if rows <= S:
        return np.zeros(0), np.zeros(0)
    if contiguous:
        # distance = token offset: the diagonals of the block of rows and keys >= S
        sub = logits[S:rows, S:rows]
        n = rows - S
        sums = np.array([np.trace(sub, offset=-d) for d in range(n)])
        counts = (n - np.arange(n)).astype(np.float64)
        return sums, counts
    # gaps in the positions: bin every pair by its distance in positions
    nd = int(pos[rows - 1] - pos[0]) + 1
    sums = np.zeros(nd)
    counts = np.zeros(nd)
    keys = np.arange(len(pos))
    for r0 in range(S, rows, 256):
        r1 = min(rows, r0 + 256)
        m = np.arange(r0, r1)
        sel = (keys[None, :] <= m[:, None]) & (keys[None, :] >= S)
        dist = (pos[r0:r1, None] - pos[None, :])[sel]
        sums += np.bincount(dist, weights=logits[r0:r1][sel], minlength=nd)
        counts += np.bincount(dist, minlength=nd)
    return trim(sums, counts)


def heads_table(dump, args, out):
    T = dump.T
    L = dump.L if args.train_len is None else args.train_len
    if L <= 0:
        die("the heads mode needs the training length (train_len or -L)")
    pos = dump.pos
    nin = int(np.searchsorted(pos, L))  # rows with p_m < L (positions increase)
    causal = np.tril(np.ones((T, T), dtype=bool))
    S = args.sink_tokens
    keys = np.arange(T)
    # unseen distances: keys n with p_m - p_n >= L, i.e. n < hi_m, and n >= S
    hi_unseen = np.searchsorted(pos, pos - L, side="right")
    unseen_keys = (keys[None, :] < hi_unseen[:, None]) & (keys[None, :] >= S)
    out.write("layer\thead\tkv_head\trows_in\trows_beyond\tsink_in\tsink_beyond\tentropy_in\t"
              "entropy_beyond\tu_in\tlabel_in\tu_all\tlabel_all\texceedance\tood\tunseen_mass\t"
              "entropy_nats_in\tentropy_nats_beyond\tsink_ratio\n")
    layers, heads = selected(dump, args)
    nan = float("nan")

    def mean(x):
        return float(x.mean()) if len(x) else nan

    for index, name in layers:
        theta = dump.layer_theta(name)
        for h in heads:
            kv = h // dump.group
            q = rotate(dump.read(name, "q", h), theta, dump)
            k = rotate(dump.read(name, "k", kv), theta, dump)
            logits = dump.scale * (q @ k.T)
            if dump.softcap > 0:
                logits = dump.softcap * np.tanh(logits / dump.softcap)
            logits[~causal] = -np.inf
            mx = logits.max(axis=1, keepdims=True)
            p = np.exp(logits - mx)
            p /= p.sum(axis=1, keepdims=True)
            sink = p[:, :S].sum(axis=1)
            unseen = p.sum(axis=1, where=unseen_keys)
            logp = np.zeros_like(p)
            np.log(p, out=logp, where=p > 0)
            logp *= p
            nats = -logp.sum(axis=1)  # -sum p ln p, in nats
            del logp, p
            ent = nats[1:] / np.log(keys[1:] + 1.0)  # normalised, rows m >= 1
            nats = nats[1:]
            # U-scores of the mean logit against distance, sink keys left out
            u_in, ng_in = u_score(*nonsink_curve(logits, pos, nin, S, dump.contiguous))
            u_all, ng_all = u_score(*nonsink_curve(logits, pos, T, S, dump.contiguous))
            # exceedance of the beyond rows against the in-train range
            if 0 < nin < T:
                lin = logits[:nin][causal[:nin]]
                lo_, hi_ = lin.min(), lin.max()
                del lin
                w = hi_ - lo_
                blo, bhi = lo_ - args.margin * w, hi_ + args.margin * w
                bot = logits[nin:]
                outside = np.count_nonzero((bot < blo) & causal[nin:]) + np.count_nonzero(bot > bhi)
                exceed = outside / float(np.count_nonzero(causal[nin:]))
            else:
                exceed = nan
            sink_in, sink_b = mean(sink[:nin]), mean(sink[nin:])
            ent_in, ent_b = mean(ent[:max(nin - 1, 0)]), mean(ent[max(nin - 1, 0):])
            nats_in, nats_b = mean(nats[:max(nin - 1, 0)]), mean(nats[max(nin - 1, 0):])
            unseen_b = mean(unseen[nin:])
            sink_ratio = sink_b / sink_in if sink_in > 0 else nan
            # NaN compares false: an undefined term flags nothing
            ood = int(unseen_b > args.unseen_threshold or exceed > args.exceed_threshold or
                      (args.entropy_threshold is not None and abs(ent_b - ent_in) > args.entropy_threshold) or
                      (args.sink_threshold is not None and abs(sink_b - sink_in) > args.sink_threshold))
            ut = args.u_threshold
            out.write("\t".join([str(index), str(h), str(kv), str(nin), str(T - nin), g9(sink_in), g9(sink_b),
                                 g9(ent_in), g9(ent_b), g9(u_in), label(u_in, ng_in, ut), g9(u_all),
                                 label(u_all, ng_all, ut), g9(exceed), str(ood), g9(unseen_b), g9(nats_in),
                                 g9(nats_b), g9(sink_ratio)]) + "\n")
            del logits


# ---------------------------------------------------------------- entropy

def entropy_table(dump, args, out):
    D = dump.D
    r = min(args.rank, D)
    out.write("layer\thead\tkv_head\ttensor\tstage\tprep\tr\tscore\tscore_norm\trho\tlambda1\tfull\teff_rank"
              "\tenergy_r\n")
    layers, heads = selected(dump, args)
    kvs = sorted(set(h // dump.group for h in heads))
    nan = float("nan")

    def neg_xlogx(v):  # -v ln v elementwise, 0 ln 0 = 0
        lv = np.zeros_like(v)
        np.log(v, out=lv, where=v > 0)
        return -v * lv

    for index, name in layers:
        theta = dump.layer_theta(name)
        for tensor, hs in (("q", heads), ("k", kvs)):
            for h in hs:
                kv = h // dump.group if tensor == "q" else h
                x = rotate(dump.read(name, tensor, h), theta, dump)
                g = x.T @ x
                tr = np.trace(g)
                if tr > 0 and np.isfinite(tr):
                    lam = np.linalg.eigvalsh(g / tr)[::-1]
                    lam = np.where(lam < 0, 0.0, lam)  # round-off negatives, not renormalised
                    h_all = neg_xlogx(lam)
                    sr = h_all[:r].sum()
                    full = h_all.sum()
                    energy = lam[:r].sum()
                    rho = np.exp(neg_xlogx(lam[:r] / energy).sum()) if energy > 0 else nan
                    vals = [sr, sr / np.log(D) if D > 1 else nan, rho, lam[0], full, np.exp(full), energy]
                else:  # a head of zeros has no spectrum
                    vals = [nan] * 7
                out.write("\t".join([str(index), str(h), str(kv), tensor, "post", "paper", str(r)] +
                                    [g9(v) for v in vals]) + "\n")


def main(argv):

    ap = argparse.ArgumentParser(prog="reference.py")
    ap.add_argument("mode", choices=["profile", "heads", "entropy"])
    ap.add_argument("file")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--method", choices=["fft", "direct"], default="fft")
    ap.add_argument("--bins", type=int, default=512)
    ap.add_argument("-l", "--layers", type=parse_list, default=None)
    ap.add_argument("-H", "--heads", type=parse_list, default=None)
    ap.add_argument("--sink-tokens", type=int, default=1)
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("-L", "--train-len", type=int, default=None)
    ap.add_argument("--unseen-threshold", type=float, default=0.05)
    ap.add_argument("--exceed-threshold", type=float, default=0.01)
    ap.add_argument("--entropy-threshold", type=float, default=None)
    ap.add_argument("--sink-threshold", type=float, default=None)
    ap.add_argument("--u-threshold", type=float, default=0.1)
    ap.add_argument("-r", "--rank", type=int, default=16)
    args = ap.parse_args(argv)
    dump = Dump(args.file)
    with open(args.output, "w") as out:
        {"profile": profile, "heads": heads_table, "entropy": entropy_table}[args.mode](dump, args, out)
    wall = time.perf_counter() - T0_WALL
    cpu = time.process_time() - T0_CPU
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stderr.write("reference: wall %.6f cpu %.6f maxrss_kb %d base_rss_kb %d\n" % (wall, cpu, rss, BASE_RSS))


if __name__ == "__main__":
    main(sys.argv[1:])
