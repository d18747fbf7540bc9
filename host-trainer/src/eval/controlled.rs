//! E5 (controlled generation): which latent dims to traverse and to toggle, picked by the
//! decoder's sensitivity — the size of the change each edit makes to the decoded output —
//! so that the figure shows a dim that visibly does something.
//!
//! Everything here works on plain codes (`latent_dim` values per row) and a decode
//! function, so the choice can be tested on a constructed decoder.

/// One candidate edit: the codes decoded before and after changing `dim`.
#[derive(Clone, Debug, PartialEq)]
pub struct EditPair {
    pub dim: usize,
    pub before: Vec<f32>,
    pub after: Vec<f32>,
}

/// An edit and the change it makes: the L2 norm of decode(after) − decode(before), in the
/// decoder's output units (for the models here: the [0, 1]-scaled inputs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sensitivity {
    pub dim: usize,
    pub change: f64,
}

/// Traversal candidates: for each of `dims`, the code with that dim at `code[d] − half_range`
/// (before) and at `code[d] + half_range` (after).
pub fn traversal_pairs(code: &[f32], dims: &[usize], half_range: f32) -> Vec<EditPair> {
    dims.iter()
        .filter(|&&d| d < code.len())
        .map(|&d| {
            let (mut before, mut after) = (code.to_vec(), code.to_vec());
            before[d] -= half_range;
            after[d] += half_range;
            EditPair {
                dim: d,
                before,
                after,
            }
        })
        .collect()
}

/// Toggle candidates between two sparse codes `code` and `other` (0 = dim off): every dim
/// on in exactly one of them. A dim on only in `other` is switched on in `code` with
/// `other`'s value; a dim on only in `code` is switched off.
pub fn toggle_pairs(code: &[f32], other: &[f32], on: &[bool], other_on: &[bool]) -> Vec<EditPair> {
    (0..code
        .len()
        .min(other.len())
        .min(on.len())
        .min(other_on.len()))
        .filter(|&d| on[d] != other_on[d])
        .map(|d| {
            let mut after = code.to_vec();
            after[d] = if other_on[d] { other[d] } else { 0.0 };
            EditPair {
                dim: d,
                before: code.to_vec(),
                after,
            }
        })
        .collect()
}

/// Decodes every pair in one call (`2 · pairs` rows: all befores, then all afters) and
/// returns the edits sorted by the change they make, largest first (ties: lower dim first).
/// `decode(codes, rows)` returns `rows × out_dim` values.
pub fn rank_by_change<E>(
    pairs: &[EditPair],
    out_dim: usize,
    decode: impl FnOnce(&[f32], usize) -> Result<Vec<f32>, E>,
) -> Result<Vec<Sensitivity>, E> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let k = pairs.len();
    let mut codes: Vec<f32> = pairs
        .iter()
        .flat_map(|p| p.before.iter().copied())
        .collect();
    codes.extend(pairs.iter().flat_map(|p| p.after.iter().copied()));
    let out = decode(&codes, 2 * k)?;
    let mut ranked: Vec<Sensitivity> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let a = out.get(i * out_dim..(i + 1) * out_dim).unwrap_or(&[]);
            let b = out
                .get((k + i) * out_dim..(k + i + 1) * out_dim)
                .unwrap_or(&[]);
            let change = a
                .iter()
                .zip(b)
                .map(|(x, y)| (f64::from(*y) - f64::from(*x)).powi(2))
                .sum::<f64>()
                .sqrt();
            Sensitivity { dim: p.dim, change }
        })
        .collect();
    ranked.sort_by(|a, b| b.change.total_cmp(&a.change).then(a.dim.cmp(&b.dim)));
    Ok(ranked)
}

/// `values` with `dim` set to `code[dim] + offset` for each offset, one code per offset.
pub fn traversal_codes(code: &[f32], dim: usize, offsets: &[f32]) -> Vec<f32> {
    offsets
        .iter()
        .flat_map(|&k| {
            let mut z = code.to_vec();
            if let Some(v) = z.get_mut(dim) {
                *v += k;
            }
            z
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// out = W z through a ReLU-free linear map, W given as columns (one per latent dim).
    fn linear_decoder(columns: Vec<Vec<f32>>) -> impl Fn(&[f32], usize) -> Result<Vec<f32>, ()> {
        move |z: &[f32], rows: usize| {
            let j = columns.len();
            let m = columns[0].len();
            let mut out = vec![0.0; rows * m];
            for r in 0..rows {
                for (d, col) in columns.iter().enumerate() {
                    for (o, w) in col.iter().enumerate() {
                        out[r * m + o] += w * z[r * j + d];
                    }
                }
            }
            Ok(out)
        }
    }

    #[test]
    fn traversal_picks_the_dim_whose_column_moves_the_output_most() {
        // Column norms 1, 5, 3, 10: dim 3 is the most sensitive but not a candidate.
        let cols = vec![
            vec![1.0, 0.0, 0.0],
            vec![3.0, 4.0, 0.0],
            vec![0.0, 0.0, 3.0],
            vec![10.0, 0.0, 0.0],
        ];
        let code = [0.5, -1.0, 2.0, 0.0];
        let pairs = traversal_pairs(&code, &[0, 1, 2], 2.0);
        let ranked = rank_by_change(&pairs, 3, linear_decoder(cols.clone())).unwrap();
        assert_eq!(ranked.iter().map(|s| s.dim).collect::<Vec<_>>(), [1, 2, 0]);
        // A linear decoder moves by 2 · half_range · ‖column‖.
        assert!((ranked[0].change - 4.0 * 5.0).abs() < 1e-9);
        assert!((ranked[2].change - 4.0).abs() < 1e-9);
        let all = rank_by_change(
            &traversal_pairs(&code, &[0, 1, 2, 3], 2.0),
            3,
            linear_decoder(cols),
        )
        .unwrap();
        assert_eq!(all[0].dim, 3);
    }

    #[test]
    fn toggle_weighs_the_switched_value_and_ignores_shared_dims() {
        // Dim 0 shared (on in both), 1 only in `other` (value 0.1), 2 only in `code`
        // (value 3), 3 only in `other` (value 2). Columns all of norm 1 except dim 0.
        let cols = vec![
            vec![100.0, 0.0],
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![0.6, 0.8],
        ];
        let code = [1.0, 0.0, 3.0, 0.0];
        let other = [5.0, 0.1, 0.0, 2.0];
        let on = [true, false, true, false];
        let other_on = [true, true, false, true];
        let pairs = toggle_pairs(&code, &other, &on, &other_on);
        assert_eq!(pairs.iter().map(|p| p.dim).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(pairs[0].after, vec![1.0, 0.1, 3.0, 0.0], "switched on");
        assert_eq!(pairs[1].after, vec![1.0, 0.0, 0.0, 0.0], "switched off");
        let ranked = rank_by_change(&pairs, 2, linear_decoder(cols)).unwrap();
        assert_eq!(
            ranked[0],
            Sensitivity {
                dim: 2,
                change: 3.0
            }
        );
        assert_eq!(ranked.iter().map(|s| s.dim).collect::<Vec<_>>(), [2, 3, 1]);
    }

    #[test]
    fn a_saturated_dim_loses_to_one_the_decoder_responds_to() {
        // A nonlinear decoder: sigmoid(4 z0) saturates for z0 far from 0, z1 acts linearly
        // with a smaller weight. Around z0 = 6, traversing z0 barely changes the output.
        let decode = |z: &[f32], rows: usize| -> Result<Vec<f32>, ()> {
            Ok((0..rows)
                .map(|r| 1.0 / (1.0 + (-4.0 * z[r * 2]).exp()) + 0.1 * z[r * 2 + 1])
                .collect())
        };
        let ranked =
            rank_by_change(&traversal_pairs(&[6.0, 0.0], &[0, 1], 1.0), 1, decode).unwrap();
        assert_eq!(ranked[0].dim, 1);
        let ranked =
            rank_by_change(&traversal_pairs(&[0.0, 0.0], &[0, 1], 1.0), 1, decode).unwrap();
        assert_eq!(ranked[0].dim, 0, "near 0 the sigmoid is steep");
    }

    #[test]
    fn no_candidates_no_decode_call() {
        let ranked = rank_by_change(&[], 3, |_: &[f32], _| -> Result<Vec<f32>, ()> {
            panic!("decode called for no candidates")
        })
        .unwrap();
        assert!(ranked.is_empty());
        assert_eq!(
            traversal_codes(&[1.0, 2.0], 1, &[-1.0, 0.0, 1.0]),
            vec![1.0, 1.0, 1.0, 2.0, 1.0, 3.0]
        );
    }
}
