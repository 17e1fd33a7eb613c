//! The same 8-bit products on AMX tiles (Intel Xeon since Sapphire Rapids).
//!
//! One `tdpbusd` multiplies a tile of 16 rows × 64 input bytes by one of 64 inputs × 16
//! outputs: 16,384 multiply-adds, where one `vpdpbusd` does 64. Under a search load,
//! all-MiniLM-L6-v2's products on the VNNI kernel were a twelfth of the server's CPU.
//!
//! Nothing is packed again: the weight's layout for VNNI (per 4 inputs, 4 bytes of each of 16
//! outputs) is AMX's layout for the right-hand tile, 128 bytes a row for a panel's two
//! tiles. The inputs are quantised as for VNNI, but kept row after row, which is the
//! left-hand tile's layout. Each block of 64 inputs is one `tdpbusd`, whose 16 × 16 integer
//! sums are stored and scaled into the row's f32 sums with the same operations, in the same
//! order, as the VNNI kernel: the two kernels give the same bits (unit test).
//!
//! Linux gives a process the 8 KB of tile registers only when it asks (`arch_prctl`
//! `ARCH_REQ_XCOMP_PERM`); [`available`] asks, once.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::I8Weight;

/// Rows of a left-hand tile.
pub(super) const TILE_ROWS: usize = 16;
/// Rows given to one thread when a product is split over the cores: 4 tiles.
const CHUNK_ROWS: usize = 4 * TILE_ROWS;
/// Products with fewer multiply-adds than this run on the calling thread alone: about 0.15 ms
/// of work here. A search load keeps the other cores busy, so a query batch's products
/// (under 30 million multiply-adds) gain nothing from a split.
const MIN_PARALLEL: usize = 1 << 26;

/// Whether this CPU runs the kernel and the system lets this process use it.
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            super::available() && kernel::cpu_has_amx_int8() && kernel::request_tile_data()
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            false
        }
    })
}

impl I8Weight {
    /// `y` `(rows, out)` of `x` `(rows, in)` on AMX; [`available`] must hold.
    pub(super) fn product_amx(&self, x: &[f32], inputs: usize, y: &mut [f32]) {
        let rows = y.len() / self.outputs;
        let work = |(chunk, y): (usize, &mut [f32])| {
            let first = chunk * CHUNK_ROWS;
            let n = y.len() / self.outputs;
            self.rows_amx(&x[first * inputs..(first + n) * inputs], inputs, y);
        };
        if rows * self.inputs * self.outputs >= MIN_PARALLEL && rayon::current_num_threads() > 1 {
            y.par_chunks_mut(CHUNK_ROWS * self.outputs)
                .enumerate()
                .for_each(work);
        } else {
            y.chunks_mut(CHUNK_ROWS * self.outputs)
                .enumerate()
                .for_each(work);
        }
    }

    /// Up to [`CHUNK_ROWS`] rows of `x` into `y`, every output.
    fn rows_amx(&self, x: &[f32], inputs: usize, y: &mut [f32]) {
        let rows = x.len() / inputs;
        let blocks = self.inputs / super::BLOCK;
        // The rows as bytes, one after the other, padded to whole tiles with rows of 128
        // (which add nothing once offset) and each row to the weight's padded inputs; and per
        // block, each row's scale `t`.
        let padded = rows.next_multiple_of(TILE_ROWS);
        let mut bytes = vec![128u8; padded * self.inputs];
        let mut t = vec![0f32; blocks * rows];
        for (r, (row, out)) in x
            .chunks_exact(inputs)
            .zip(bytes.chunks_exact_mut(self.inputs))
            .enumerate()
        {
            for (b, (block, out)) in row
                .chunks(super::BLOCK)
                .zip(out.chunks_exact_mut(super::BLOCK))
                .enumerate()
            {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `available()` held (see `kernel::panel`).
                #[allow(unsafe_code)]
                {
                    t[b * rows + r] = unsafe { super::kernel::quantise(block, out) };
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (b, block, out);
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `product_amx` is called only where `available()` held: the CPU has
        // AVX-512, VNNI and AMX, and this process may use the tiles.
        #[allow(unsafe_code)]
        unsafe {
            kernel::product(self, &bytes, &t, rows, y)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (bytes, t, y);
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::asm;
    use std::arch::x86_64::*;

    use super::super::kernel::{add_block, load_i32, write_rows};
    use super::super::{BLOCK, BLOCK_GROUPS, COLUMNS, I8Weight, LANES};
    use super::TILE_ROWS;

    /// CPUID leaf 7: AMX-TILE (EDX bit 24) and AMX-INT8 (bit 25).
    pub(super) fn cpu_has_amx_int8() -> bool {
        if __cpuid(0).eax < 7 {
            return false;
        }
        let edx = __cpuid_count(7, 0).edx;
        edx & (1 << 24) != 0 && edx & (1 << 25) != 0
    }

    /// Asks Linux for the tile registers' state (`ARCH_REQ_XCOMP_PERM`, `XFEATURE_XTILEDATA`);
    /// the grant is the whole process's. A kernel or hypervisor without AMX refuses.
    #[cfg(target_os = "linux")]
    pub(super) fn request_tile_data() -> bool {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: `arch_prctl` with these arguments only changes what the process may use.
        #[allow(unsafe_code)]
        let r = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        r == 0
    }

    /// The tile configuration (palette 1): all 8 tiles 16 rows of 64 bytes. Tiles 0 and 5
    /// hold 16 input rows each of a block, tiles 1 and 2 the block's weights for a panel's two
    /// halves of 16 outputs, tiles 3, 4, 6 and 7 their integer sums.
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    impl Config {
        fn new() -> Self {
            let mut c = [0u8; 64];
            c[0] = 1;
            for tile in 0..8 {
                c[16 + 2 * tile..18 + 2 * tile].copy_from_slice(&64u16.to_le_bytes());
                c[48 + tile] = TILE_ROWS as u8;
            }
            Self(c)
        }
    }

    /// Bytes of weights fetched ahead of the block being multiplied: the next block's.
    const PREFETCH: usize = 2 * 1024;

    /// Four tiles of integer sums, 16 rows × 16 outputs each, as `tilestored` writes them: two
    /// tiles of rows by a panel's two halves.
    #[repr(C, align(64))]
    struct Sums([[i32; LANES]; 4 * TILE_ROWS]);

    /// `y` of the `rows` quantised rows in `bytes` (padded to whole tiles), per block scales `t`
    /// (`t[b * rows + r]`): per panel of 32 outputs, per block, the block's weights are loaded
    /// once and multiplied by each tile of rows; the sums are offset and scaled into `sums`.
    #[target_feature(enable = "avx512f")]
    pub(super) fn product(w: &I8Weight, bytes: &[u8], t: &[f32], rows: usize, y: &mut [f32]) {
        let (inputs, outputs) = (w.inputs, w.outputs);
        let groups = inputs / 4;
        let tiles = bytes.len() / inputs / TILE_ROWS;
        assert!(tiles * TILE_ROWS >= rows && bytes.len() == tiles * TILE_ROWS * inputs);
        assert!(t.len() == inputs / BLOCK * rows && y.len() == rows * outputs);
        let config = Config::new();
        let mut ints = Sums([[0; LANES]; 4 * TILE_ROWS]);
        let mut sums = vec![[_mm512_setzero_ps(); 2]; rows];
        // SAFETY: the configuration is 64 bytes, as `ldtilecfg` reads.
        #[allow(unsafe_code)]
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly));
        }
        for (panel, p) in w.packed.chunks_exact(groups).zip(0..) {
            let at = p * COLUMNS;
            sums.fill([_mm512_setzero_ps(); 2]);
            for (b, weights) in panel.chunks_exact(BLOCK_GROUPS).enumerate() {
                assert_eq!(weights.len(), TILE_ROWS);
                // The weights ahead, into the cache while this block is multiplied: a
                // search's few rows read each weight once, so the tile loads waited on memory.
                let ahead = weights.as_ptr_range().end.cast::<u8>();
                for line in (0..PREFETCH).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line).cast());
                }
                // SAFETY: the two weight tiles are 16 rows of 64 bytes, 128 bytes apart: the
                // 16 × 2 groups of `weights` (checked above).
                #[allow(unsafe_code)]
                unsafe {
                    asm!(
                        "tileloadd tmm1, [{w} + {stride} * 1]",
                        "tileloadd tmm2, [{w} + {stride} * 1 + 64]",
                        w = in(reg) weights.as_ptr(),
                        stride = in(reg) 2 * size_of::<super::super::Group>(),
                        options(nostack, readonly),
                    );
                }
                let offsets = &w.offset[b * outputs + at..b * outputs + at + COLUMNS];
                let (o0, o1) = (load_i32(&offsets[..LANES]), load_i32(&offsets[LANES..]));
                // Two tiles of rows at a time, so that four products are under way at once
                // (one tile at a time: about a tenth slower in `kairos bench gemm`).
                let mut first = 0;
                while first < rows {
                    let pair = rows - first > TILE_ROWS;
                    let a = &bytes[first * inputs + b * BLOCK..];
                    let need = if pair { 2 * TILE_ROWS } else { TILE_ROWS };
                    assert!(a.len() >= (need - 1) * inputs + BLOCK);
                    // SAFETY: each input tile is 16 rows of 64 bytes, `inputs` apart, within
                    // `a` (checked above; the second starts 16 rows on); the stores write the
                    // 4 KB of `ints`, or its first 2 KB.
                    #[allow(unsafe_code)]
                    unsafe {
                        if pair {
                            asm!(
                                "tileloadd tmm0, [{a} + {stride} * 1]",
                                "tileloadd tmm5, [{a2} + {stride} * 1]",
                                "tilezero tmm3",
                                "tilezero tmm4",
                                "tilezero tmm6",
                                "tilezero tmm7",
                                "tdpbusd tmm3, tmm0, tmm1",
                                "tdpbusd tmm4, tmm0, tmm2",
                                "tdpbusd tmm6, tmm5, tmm1",
                                "tdpbusd tmm7, tmm5, tmm2",
                                "tilestored [{c} + {cs} * 1], tmm3",
                                "tilestored [{c} + {cs} * 1 + 1024], tmm4",
                                "tilestored [{c} + {cs} * 1 + 2048], tmm6",
                                "tilestored [{c} + {cs} * 1 + 3072], tmm7",
                                a = in(reg) a.as_ptr(),
                                a2 = in(reg) a.as_ptr().add(TILE_ROWS * inputs),
                                stride = in(reg) inputs,
                                c = in(reg) ints.0.as_mut_ptr(),
                                cs = in(reg) 64usize,
                                options(nostack),
                            );
                        } else {
                            asm!(
                                "tileloadd tmm0, [{a} + {stride} * 1]",
                                "tilezero tmm3",
                                "tilezero tmm4",
                                "tdpbusd tmm3, tmm0, tmm1",
                                "tdpbusd tmm4, tmm0, tmm2",
                                "tilestored [{c} + {cs} * 1], tmm3",
                                "tilestored [{c} + {cs} * 1 + 1024], tmm4",
                                a = in(reg) a.as_ptr(),
                                stride = in(reg) inputs,
                                c = in(reg) ints.0.as_mut_ptr(),
                                cs = in(reg) 64usize,
                                options(nostack),
                            );
                        }
                    }
                    let n = need.min(rows - first);
                    for (r, sum) in sums[first..first + n].iter_mut().enumerate() {
                        // Row r's two halves: in the first pair of tiles, or the second.
                        let at = r / TILE_ROWS * 2 * TILE_ROWS + r % TILE_ROWS;
                        let a = [load_i32(&ints.0[at]), load_i32(&ints.0[at + TILE_ROWS])];
                        add_block(sum, a, [o0, o1], t[b * rows + first + r]);
                    }
                    first += need;
                }
            }
            write_rows(w, &sums, at, y);
        }
        // SAFETY: gives the tile registers back (their state is then no longer saved on
        // every context switch).
        #[allow(unsafe_code)]
        unsafe {
            asm!("tilerelease", options(nostack, nomem));
        }
    }
}
