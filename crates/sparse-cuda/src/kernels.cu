/*
 * sparse-cuda kernels: the CSR layer path of sparse-core, on NVIDIA GPUs.
 *
 * Every kernel is a loop over independent work items (FOR_EACH_ITEM): no shared memory, no
 * barriers, no warp intrinsics. On a GPU the items are spread over a grid-stride loop; the
 * emulator (csrc/emulate.c) compiles this same file as C and runs the items one after another,
 * so the tests check this exact source on machines without a GPU. The prelude that defines
 * DS_KERNEL, FOR_EACH_ITEM, DS_DEVICE (a helper function), atomicAdd and float_bits is
 * src/prelude.cuh for NVRTC and csrc/emulate.c for the host compiler.
 *
 * Activations are feature-major without padding: element (f, b) of a `features x batch` buffer
 * sits at f * batch + b. CSR weights: row_ptr[n_out + 1], cols[nnz], vals[nnz] (row = output).
 * Activation codes: 0 linear, 1 ReLU, 2 bound * tanh.
 */

/* y = act(W x + bias) for CSR W; one item per output element (o, b). Consecutive items read
 * consecutive b of the same input rows, so the reads of x coalesce. */
DS_KERNEL(csr_forward, unsigned batch, const unsigned *row_ptr,
          const unsigned *cols, const float *vals, const float *bias, const float *x, float *y,
          unsigned act, float bound)
{
    FOR_EACH_ITEM(item) {
        unsigned o = (unsigned)(item / batch);
        unsigned b = (unsigned)(item % batch);
        float acc = 0.0f;
        for (unsigned k = row_ptr[o]; k < row_ptr[o + 1]; ++k)
            acc += vals[k] * x[(unsigned long long)cols[k] * batch + b];
        acc += bias[o];
        if (act == 1u) acc = acc > 0.0f ? acc : 0.0f;
        else if (act == 2u) acc = bound * tanhf(acc);
        y[item] = acc;
    }
}

/* y = act(y + bias) after a dense product; one item per element. */
DS_KERNEL(bias_act, unsigned batch, const float *bias, float *y, unsigned act, float bound)
{
    FOR_EACH_ITEM(item) {
        float v = y[item] + bias[item / batch];
        if (act == 1u) v = v > 0.0f ? v : 0.0f;
        else if (act == 2u) v = bound * tanhf(v);
        y[item] = v;
    }
}

/* Gradient at the output layer's pre-activation: dz = dy (linear) or
 * dy * bound * (1 - (y / bound)^2) (bound * tanh, from its output y). */
DS_KERNEL(output_grad, const float *dy, const float *y, float *dz, unsigned act, float bound)
{
    FOR_EACH_ITEM(item) {
        float g = dy[item];
        if (act == 2u) {
            float t = y[item] / bound;
            g = g * bound * (1.0f - t * t);
        }
        dz[item] = g;
    }
}

/* ReLU backward in place: d = h > 0 ? d : 0, with h the ReLU's output. */
DS_KERNEL(relu_grad, const float *h, float *d)
{
    FOR_EACH_ITEM(item) {
        if (!(h[item] > 0.0f)) d[item] = 0.0f;
    }
}

/* dx = W^T dz for CSR W, gathered per input feature through the transposed structure
 * (col_ptr[n_in + 1], the row of each entry, and the entry's position in vals). */
DS_KERNEL(csr_backward_data, unsigned batch, const unsigned *col_ptr, const unsigned *rows,
          const unsigned *perm, const float *vals, const float *dz, float *dx)
{
    FOR_EACH_ITEM(item) {
        unsigned i = (unsigned)(item / batch);
        unsigned b = (unsigned)(item % batch);
        float acc = 0.0f;
        for (unsigned j = col_ptr[i]; j < col_ptr[i + 1]; ++j)
            acc += vals[perm[j]] * dz[(unsigned long long)rows[j] * batch + b];
        dx[item] = acc;
    }
}

/* Parameter gradients as sums over the batch, in two steps that spread each sum across
 * `lanes` items. With one item per sum looping over the batch, most of the GPU sat idle and
 * each item waited on its loads one after another: the weight gradient took the same time at
 * every density, and the bias gradient alone about 40 us at batch 256.
 *   param_grad_part: item (k, l) adds the terms of sum k at b = l, l + lanes, ... into
 *       part[k * lanes + l]. Sums 0 .. nnz - 1 are a sparse layer's weights,
 *       dW[k] = sum_b dz[row(k), b] x[col(k), b] at its stored positions; the n_out after them
 *       the biases, db[o] = sum_b dz[o, b]. Consecutive items read consecutive b of the same
 *       rows, so the reads coalesce;
 *   row_sum_part: the same for a dense layer's biases alone (its weights come from cuBLAS);
 *   sum_lanes: one item per sum adds its lanes in order; the first n_first sums go to `first`,
 *       the rest to `second`.
 * Every sum has a fixed order, so results do not depend on the schedule. */
DS_KERNEL(param_grad_part, unsigned batch, unsigned lanes, unsigned nnz,
          const unsigned *conn_rows, const unsigned *cols, const float *dz, const float *x,
          float *part)
{
    FOR_EACH_ITEM(item) {
        unsigned long long k = item / lanes;
        unsigned l = (unsigned)(item % lanes);
        float acc = 0.0f;
        if (k < nnz) {
            const float *d = dz + (unsigned long long)conn_rows[k] * batch;
            const float *h = x + (unsigned long long)cols[k] * batch;
            for (unsigned b = l; b < batch; b += lanes) acc += d[b] * h[b];
        } else {
            const float *d = dz + (k - nnz) * batch;
            for (unsigned b = l; b < batch; b += lanes) acc += d[b];
        }
        part[item] = acc;
    }
}

DS_KERNEL(row_sum_part, unsigned batch, unsigned lanes, const float *dz, float *part)
{
    FOR_EACH_ITEM(item) {
        const float *d = dz + (item / lanes) * batch;
        float acc = 0.0f;
        for (unsigned b = (unsigned)(item % lanes); b < batch; b += lanes) acc += d[b];
        part[item] = acc;
    }
}

DS_KERNEL(sum_lanes, unsigned lanes, unsigned n_first, const float *part, float *first,
          float *second)
{
    FOR_EACH_ITEM(k) {
        const float *p = part + k * lanes;
        float acc = 0.0f;
        for (unsigned l = 0; l < lanes; ++l) acc += p[l];
        if (k < n_first) first[k] = acc;
        else second[k - n_first] = acc;
    }
}

/* One Adam step (PyTorch's formula with coupled L2 decay; sparse-core's adam.rs gives the
 * scalars and the flush thresholds). */
DS_KERNEL(adam_step, float *p, const float *g, float *m, float *v, float one_minus_beta1,
          float beta2, float one_minus_beta2, float weight_decay, float neg_step_size,
          float bias_correction2_sqrt, float eps, float tiny_grad, float tiny_moment)
{
    FOR_EACH_ITEM(i) {
        float gi = g[i];
        if (weight_decay != 0.0f) gi = gi + weight_decay * p[i];
        if (!(fabsf(gi) >= tiny_grad)) gi = 0.0f;
        float mi = m[i] + one_minus_beta1 * (gi - m[i]);
        if (!(fabsf(mi) >= tiny_moment)) mi = 0.0f;
        float vi = v[i] * beta2 + one_minus_beta2 * gi * gi;
        if (!(fabsf(vi) >= tiny_moment)) vi = 0.0f;
        float denom = sqrtf(vi) / bias_correction2_sqrt + eps;
        p[i] = p[i] + neg_step_size * mi / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

/* Soft update of identical layouts in place: target = t * online + u * target (u = 1 - t). */
DS_KERNEL(soft_update, float *target, const float *online, float t, float u)
{
    FOR_EACH_ITEM(i) target[i] = t * online[i] + u * target[i];
}

/*
 * Soft update over the union of two CSR topologies, pruned back to a connection budget
 * (set-evolve's soft_update_and_prune):
 *   union_target, union_online, union_finish  mix into a dense n_out x n_in scratch with flags
 *       (1 = target only, 2 = online only, 3 = both), each value the formula with the absent
 *       side as 0;
 *   select_init, select_histogram x4, select_digit x4  find, by radix selection over the bits of
 *       |v| (8 bits at a time from the top), the key of the `extra`-th smallest present value,
 *       where extra = union size - budget, and how many values equal to it are to be dropped;
 *   prune_count, prune_rows, prune_scan, prune_chunks, prune_write  write the surviving
 *       entries as CSR, dropping keys below the threshold and, at the threshold, the lowest
 *       positions first.
 * state[]: 0 threshold prefix, 1 rank still to find / ties to drop, 2 pruning needed,
 * 3 union size, 4 budget.
 * The scatter kernels take one item per connection (the row found by a binary search over the
 * row pointers) and the counting and writing kernels one per chunk of `chunk` cells of a row:
 * with one item per row, each walking its whole row, the GPU ran only n_out threads, and a
 * 256x256 layer's update took several hundred microseconds.
 */
DS_DEVICE unsigned row_of(const unsigned *row_ptr, unsigned n_rows, unsigned k)
{
    /* row_ptr[lo] <= k < row_ptr[hi] throughout. */
    unsigned lo = 0u, hi = n_rows;
    while (hi - lo > 1u) {
        unsigned mid = lo + (hi - lo) / 2u;
        if (row_ptr[mid] <= k) lo = mid;
        else hi = mid;
    }
    return lo;
}

DS_KERNEL(union_target, unsigned n_out, unsigned n_in, const unsigned *row_ptr,
          const unsigned *cols, const float *vals, float *dense, unsigned *flags)
{
    FOR_EACH_ITEM(k) {
        unsigned long long p =
            (unsigned long long)row_of(row_ptr, n_out, (unsigned)k) * n_in + cols[k];
        dense[p] = vals[k];
        flags[p] = 1u;
    }
}

DS_KERNEL(union_online, unsigned n_out, unsigned n_in, const unsigned *row_ptr,
          const unsigned *cols, const float *vals, float *dense, unsigned *flags, float t, float u)
{
    FOR_EACH_ITEM(k) {
        unsigned long long p =
            (unsigned long long)row_of(row_ptr, n_out, (unsigned)k) * n_in + cols[k];
        if (flags[p] == 1u) {
            dense[p] = t * vals[k] + u * dense[p];
            flags[p] = 3u;
        } else {
            dense[p] = vals[k];
            flags[p] = 2u;
        }
    }
}

DS_KERNEL(union_finish, float *dense, const unsigned *flags, float t, float u)
{
    FOR_EACH_ITEM(p) {
        if (flags[p] == 1u) dense[p] = t * 0.0f + u * dense[p];
        else if (flags[p] == 2u) dense[p] = t * dense[p] + u * 0.0f;
    }
}

DS_KERNEL(select_init, unsigned budget, unsigned *state, unsigned *hist)
{
    FOR_EACH_ITEM(i) {
        if (i == 0) {
            state[0] = 0u;
            state[1] = 0u;
            state[2] = 1u;
            state[3] = 0u;
            state[4] = budget;
        }
        for (unsigned d = 0; d < 256u; ++d) hist[d] = 0u;
    }
}

/* Counts, per value of the key's digit at `shift`, the present keys whose higher digits equal
 * the threshold prefix found so far. */
DS_KERNEL(select_histogram, const float *dense, const unsigned *flags, const unsigned *state,
          unsigned *hist, unsigned shift)
{
    FOR_EACH_ITEM(p) {
        if (flags[p] != 0u && state[2] != 0u) {
            unsigned key = float_bits(fabsf(dense[p]));
            unsigned high = shift >= 24u ? 0u : (0xffffffffu << (shift + 8u));
            if ((key & high) == (state[0] & high))
                atomicAdd(&hist[(key >> shift) & 255u], 1u);
        }
    }
}

/* One item: fixes the digit at `shift` from the histogram and clears it. On the first digit
 * (shift 24) the histogram holds every present key, which gives the union size. */
DS_KERNEL(select_digit, unsigned *state, unsigned *hist, unsigned shift)
{
    FOR_EACH_ITEM(i) {
        if (shift == 24u) {
            unsigned total = 0u;
            for (unsigned d = 0; d < 256u; ++d) total += hist[d];
            state[3] = total;
            if (total > state[4]) state[1] = total - state[4];
            else state[2] = 0u;
        }
        if (state[2] != 0u) {
            unsigned below = 0u, d = 0u;
            while (below + hist[d] < state[1]) {
                below += hist[d];
                ++d;
            }
            state[0] |= d << shift;
            state[1] -= below;
        }
        for (unsigned d = 0; d < 256u; ++d) hist[d] = 0u;
        (void)i;
    }
}

/* Per chunk of `chunk` cells of a row (nch chunks per row; item = row * nch + chunk): keys
 * above the threshold (all present keys when nothing is pruned) and keys equal to it. */
DS_KERNEL(prune_count, unsigned n_in, unsigned chunk, unsigned nch, const float *dense,
          const unsigned *flags, const unsigned *state, unsigned *chunk_keep,
          unsigned *chunk_ties)
{
    FOR_EACH_ITEM(item) {
        unsigned long long o = item / nch;
        unsigned c0 = (unsigned)(item % nch) * chunk;
        unsigned c1 = c0 + chunk < n_in ? c0 + chunk : n_in;
        unsigned keep = 0u, ties = 0u;
        for (unsigned c = c0; c < c1; ++c) {
            unsigned long long p = o * n_in + c;
            if (flags[p] == 0u) continue;
            if (state[2] == 0u) {
                ++keep;
                continue;
            }
            unsigned key = float_bits(fabsf(dense[p]));
            if (key > state[0]) ++keep;
            else if (key == state[0]) ++ties;
        }
        chunk_keep[item] = keep;
        chunk_ties[item] = ties;
    }
}

/* Per row: the totals of its chunks. */
DS_KERNEL(prune_rows, unsigned nch, const unsigned *chunk_keep, const unsigned *chunk_ties,
          unsigned *row_keep, unsigned *row_ties)
{
    FOR_EACH_ITEM(o) {
        unsigned keep = 0u, ties = 0u;
        for (unsigned ch = 0; ch < nch; ++ch) {
            keep += chunk_keep[o * nch + ch];
            ties += chunk_ties[o * nch + ch];
        }
        row_keep[o] = keep;
        row_ties[o] = ties;
    }
}

/* One item: row pointers of the pruned layer; row_ties becomes the number of ties each row
 * drops (the lowest positions of the whole layer go first). */
DS_KERNEL(prune_scan, unsigned n_out, const unsigned *state, const unsigned *row_keep,
          unsigned *row_ties, unsigned *row_ptr)
{
    FOR_EACH_ITEM(i) {
        unsigned drop = state[2] != 0u ? state[1] : 0u;
        row_ptr[0] = 0u;
        for (unsigned o = 0; o < n_out; ++o) {
            unsigned here = row_ties[o] < drop ? row_ties[o] : drop;
            drop -= here;
            row_ptr[o + 1] = row_ptr[o] + row_keep[o] + (row_ties[o] - here);
            row_ties[o] = here;
        }
        (void)i;
    }
}

/* Per row: where each chunk's survivors start (chunk_keep becomes that slot) and how many of
 * its ties it drops (chunk_ties becomes that count; the row's lowest positions first). */
DS_KERNEL(prune_chunks, unsigned nch, const unsigned *row_ptr, const unsigned *row_drop,
          unsigned *chunk_keep, unsigned *chunk_ties)
{
    FOR_EACH_ITEM(o) {
        unsigned out = row_ptr[o], drop = row_drop[o];
        for (unsigned ch = 0; ch < nch; ++ch) {
            unsigned long long i = o * nch + ch;
            unsigned ties = chunk_ties[i];
            unsigned here = ties < drop ? ties : drop;
            unsigned kept = chunk_keep[i] + (ties - here);
            drop -= here;
            chunk_keep[i] = out;
            chunk_ties[i] = here;
            out += kept;
        }
    }
}

/* Per chunk: writes its survivors from their first slot on. */
DS_KERNEL(prune_write, unsigned n_in, unsigned chunk, unsigned nch, const float *dense,
          const unsigned *flags, const unsigned *state, const unsigned *chunk_drop,
          const unsigned *chunk_out, unsigned *cols, float *vals)
{
    FOR_EACH_ITEM(item) {
        unsigned long long o = item / nch;
        unsigned c0 = (unsigned)(item % nch) * chunk;
        unsigned c1 = c0 + chunk < n_in ? c0 + chunk : n_in;
        unsigned out = chunk_out[item], dropped = 0u;
        for (unsigned c = c0; c < c1; ++c) {
            unsigned long long p = o * n_in + c;
            if (flags[p] == 0u) continue;
            int keep = 1;
            if (state[2] != 0u) {
                unsigned key = float_bits(fabsf(dense[p]));
                if (key < state[0]) keep = 0;
                else if (key == state[0] && dropped < chunk_drop[item]) {
                    keep = 0;
                    ++dropped;
                }
            }
            if (keep) {
                cols[out] = c;
                vals[out] = dense[p];
                ++out;
            }
        }
    }
}

/* TD3's elementwise pieces (crates/td3): the smoothed target action
 * a' = clip(pi'(s') + clip(eps, -c, c), -max, max), ... */
DS_KERNEL(smoothed_action, const float *pi, const float *noise, float *out, float noise_clip,
          float max_action)
{
    FOR_EACH_ITEM(i) {
        float e = fminf(fmaxf(noise[i], -noise_clip), noise_clip);
        out[i] = fminf(fmaxf(pi[i] + e, -max_action), max_action);
    }
}

/* ... the target y = r + not_done * gamma * min(q1, q2), ... */
DS_KERNEL(td_target, const float *q1, const float *q2, const float *reward,
          const float *not_done, float *y, float gamma)
{
    FOR_EACH_ITEM(b) {
        float q = fminf(q1[b], q2[b]);
        y[b] = reward[b] + not_done[b] * gamma * q;
    }
}

/* ... and the squared-error gradient d = 2 (q - y) / n, with the squared errors for the loss. */
DS_KERNEL(mse_grad, unsigned n, const float *q, const float *y, float *d, float *sq)
{
    FOR_EACH_ITEM(b) {
        float e = q[b] - y[b];
        d[b] = 2.0f * e / (float)n;
        sq[b] = e * e;
    }
}

/* Fills with one value. */
DS_KERNEL(fill, float *x, float value)
{
    FOR_EACH_ITEM(i) x[i] = value;
}
