//! Python's `random` module, only as far as the official evaluator uses it:
//! `random.seed(0); random.sample(range(m), m)` (CPython 3: MT19937 `init_by_array([0])`,
//! `_randbelow` by rejection on `getrandbits(n.bit_length())`, pool-style `sample`).

pub struct Mt19937 {
    mt: [u32; 624],
    idx: usize,
}

impl Mt19937 {
    fn init_genrand(s: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = s;
        for i in 1..624 {
            mt[i] = 1812433253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, idx: 624 }
    }

    /// CPython's `random.seed(n)` for a non-negative int `n` < 2^32.
    pub fn python_seed(n: u32) -> Self {
        let key = [n];
        let mut m = Self::init_genrand(19650218);
        let mt = &mut m.mt;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..624.max(key.len()) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1664525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= 624 {
                mt[0] = mt[623];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..623 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1566083941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= 624 {
                mt[0] = mt[623];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        m
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.idx >= 624 {
            for k in 0..624 {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % 624] & 0x7fff_ffff);
                let mut v = self.mt[(k + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[k] = v;
            }
            self.idx = 0;
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `random.getrandbits(k)` for 1 ≤ k ≤ 64 (32-bit words, least significant first).
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        if k <= 32 {
            return (self.next_u32() >> (32 - k)) as u64;
        }
        let lo = self.next_u32() as u64;
        let hi = (self.next_u32() >> (64 - k)) as u64;
        lo | (hi << 32)
    }

    /// `random._randbelow(n)` (n ≥ 1).
    pub fn randbelow(&mut self, n: u64) -> u64 {
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `random.sample(range(m), m)`: a permutation of 0..m (m < 2^32; u32 halves the pool's
    /// cache misses, which dominate for millions of pairs).
    pub fn sample_permutation(&mut self, m: usize) -> Vec<u32> {
        assert!(m <= u32::MAX as usize, "permutation of {m} items");
        let mut pool: Vec<u32> = (0..m as u32).collect();
        let mut out = Vec::with_capacity(m);
        for i in 0..m {
            let j = self.randbelow((m - i) as u64) as usize;
            out.push(pool[j]);
            pool[j] = pool[m - i - 1];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn matches_cpython() {
        // python3 -c "import random; random.seed(0); print(random.getrandbits(32), random.sample(range(10), 10))"
        let mut m = Mt19937::python_seed(0);
        assert_eq!(m.getrandbits(32), 3626764237);
        let mut m = Mt19937::python_seed(0);
        assert_eq!(m.sample_permutation(10), vec![6, 9, 0, 2, 4, 3, 5, 1, 8, 7]);
    }
}
