//! Average precision as the official `average_precision_calculator.py` computes it: the pooled
//! `(score, label)` pairs in `heapq` order, the `random.sample` shuffle that decides ties, the
//! stable descending sort, and the non-interpolated sum (see the crate's header for why).

use crate::TieOrder;
use crate::mt;

/// Non-interpolated AP of an ordered label list, as the official loop sums it.
pub(crate) fn ap_of_ranked(labels: impl Iterator<Item = u8>, num_positives: f64) -> f64 {
    if num_positives <= 0.0 {
        return 0.0;
    }
    let delta = 1.0 / num_positives;
    let mut ap = 0.0;
    let mut poscount = 0.0;
    for (i, l) in labels.enumerate() {
        if l > 0 {
            poscount += 1.0;
            ap += poscount / (i + 1) as f64 * delta;
        }
    }
    ap
}

/// One pooled pair. `key` orders pairs for the deterministic tie rule.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pair {
    pub(crate) score: f64,
    pub(crate) label: u8,
    pub(crate) video: u32,
    pub(crate) class: u32,
}

/// `heapq`'s min-heap of `(score, label)` tuples, kept in the exact list layout CPython's
/// `heappush` produces (tuples compare by score, then label).
#[derive(Default, Clone)]
pub(crate) struct PyHeap {
    pub(crate) items: Vec<Pair>,
}

impl PyHeap {
    fn less(a: &Pair, b: &Pair) -> bool {
        a.score < b.score || (a.score == b.score && a.label < b.label)
    }
    pub(crate) fn push(&mut self, p: Pair) {
        self.items.push(p);
        let mut pos = self.items.len() - 1;
        while pos > 0 {
            let parent = (pos - 1) >> 1;
            if Self::less(&p, &self.items[parent]) {
                self.items[pos] = self.items[parent];
                pos = parent;
            } else {
                break;
            }
        }
        self.items[pos] = p;
    }
}

/// AP over pooled pairs under a tie rule. `pairs` must be in push order for `Official`.
pub(crate) fn average_precision(pairs: &[Pair], num_positives: f64, tie: TieOrder) -> f64 {
    if pairs.is_empty() || num_positives <= 0.0 {
        return 0.0;
    }
    match tie {
        TieOrder::Official => {
            let mut heap = PyHeap {
                items: Vec::with_capacity(pairs.len()),
            };
            for p in pairs {
                heap.push(*p);
            }
            ap_official_from_heap(&heap.items, num_positives)
        }
        TieOrder::Deterministic => {
            let mut v = pairs.to_vec();
            v.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then(a.video.cmp(&b.video))
                    .then(a.class.cmp(&b.class))
            });
            ap_of_ranked(v.iter().map(|p| p.label), num_positives)
        }
    }
}

/// An unsigned key whose order is `f64::total_cmp`'s.
#[inline]
pub(crate) fn total_order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

pub(crate) fn ap_official_from_heap(heap: &[Pair], num_positives: f64) -> f64 {
    let m = heap.len();
    let perm = mt::Mt19937::python_seed(0).sample_permutation(m);
    // Python's sorted(..., reverse=True) is stable: equal scores keep the shuffled order. That
    // is an unstable sort by (score descending, shuffled position), on 16-byte keys: the score
    // as an integer that orders like `f64::total_cmp`, inverted for descending.
    let mut keys: Vec<(u64, u32, u8)> = perm
        .iter()
        .enumerate()
        .map(|(pos, &i)| {
            let p = &heap[i as usize];
            (!total_order_key(p.score), pos as u32, p.label)
        })
        .collect();
    keys.sort_unstable_by_key(|&(k, pos, _)| (k, pos));
    ap_of_ranked(keys.iter().map(|k| k.2), num_positives)
}
