//! Every path against an integer reference written here from the definition, on odd sizes,
//! column tails, reductions that are not a multiple of 4, extreme values and strided rows.

use super::*;
use crate::kernels::reference::lcg_bytes;

/// `Σₖ a[i][k]·b[k][j]` in i64, from the row-major operands.
fn reference(a: &[u8], m: usize, lda: usize, b: &[i8], k: usize, n: usize) -> Vec<i64> {
    let mut c = vec![0i64; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k)
                .map(|t| i64::from(a[i * lda + t]) * i64::from(b[t * n + j]))
                .sum();
        }
    }
    c
}

#[test]
fn every_path_equals_the_integer_reference() {
    eprintln!(
        "int8 gemm paths on this CPU: {:?}",
        Int8Path::all_available()
    );
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 5, 17),
        (7, 4, 16),
        (9, 27, 33),
        (2, 64, 48),
        (13, 147, 40),
        (8, 9, 1),
        (17, 300, 70),
    ] {
        let lda = k + 3;
        let a = lcg_bytes(m * lda, (m * k * n) as u64);
        let b: Vec<i8> = lcg_bytes(k * n, (m + k + n) as u64)
            .into_iter()
            .map(|v| v as i8)
            .collect();
        let want = reference(&a, m, lda, &b, k, n);
        let packed = PackedB8::pack(&b, k, n, n);
        for path in Int8Path::all_available() {
            let ldc = n + 2;
            let mut c = vec![-1i32; m * ldc];
            gemm_u8i8_with(path, &a, m, lda, &packed, &mut c, ldc);
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(
                        i64::from(c[i * ldc + j]),
                        want[i * n + j],
                        "{path:?} m {m} k {k} n {n} at ({i}, {j})"
                    );
                }
                // Past n, the row's padding is left alone.
                assert_eq!(
                    &c[i * ldc + n..i * ldc + ldc],
                    &[-1, -1],
                    "{path:?} padding"
                );
            }
        }
    }
}

/// The largest magnitudes: 255 × −128 on every product (where `vpmaddubsw` would saturate), and
/// 255 × 127.
#[test]
fn extreme_values_are_exact() {
    let (m, k, n) = (3, 1000, 19);
    for w in [-128i8, 127] {
        let a = vec![255u8; m * k];
        let b = vec![w; k * n];
        let packed = PackedB8::pack(&b, k, n, n);
        for path in Int8Path::all_available() {
            let mut c = vec![0i32; m * n];
            gemm_u8i8_with(path, &a, m, k, &packed, &mut c, n);
            assert!(
                c.iter().all(|&v| v == 255 * i32::from(w) * k as i32),
                "{path:?} {w}"
            );
        }
    }
}

#[test]
fn column_sums_take_out_the_zero_point() {
    let (k, n, z) = (10, 5, 128u8);
    let b: Vec<i8> = (0..k * n)
        .map(|i| (i as i32 * 37 % 255 - 127) as i8)
        .collect();
    let packed = PackedB8::pack(&b, k, n, n);
    let a: Vec<u8> = (0..k).map(|i| (i * 29 % 256) as u8).collect();
    let mut c = vec![0i32; n];
    gemm_u8i8(&a, 1, k, &packed, &mut c, n);
    for j in 0..n {
        let centred: i32 = (0..k)
            .map(|t| (i32::from(a[t]) - i32::from(z)) * i32::from(b[t * n + j]))
            .sum();
        assert_eq!(c[j] - i32::from(z) * packed.col_sums[j], centred);
    }
}

#[test]
#[should_panic(expected = "packed weights")]
fn packed_weights_of_the_wrong_length_are_refused() {
    let mut packed = PackedB8::pack(&[1i8; 8], 2, 4, 4);
    packed.data.pop();
    gemm_u8i8(&[0u8; 2], 1, 2, &packed, &mut [0i32; 4], 4);
}
