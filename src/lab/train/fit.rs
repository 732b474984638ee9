//! Fitting the two candidate models with linfa, and exporting them into the artifact's
//! dependency-free form (`model::Logistic`, `model::Forest`).
//!
//! Class imbalance (positive rows, `data::targets`, are a few percent of all rows) is handled
//! by resampling, differently per model because linfa's logistic regression takes no sample
//! weights:
//! - **Logistic regression**: every positive row is repeated `round(negatives / positives)`
//!   times, which for a linear model's log-loss is exactly weighting the positive class by
//!   that factor (class weights by replication); features are standardised first.
//! - **Forest** (balanced bagging, Chen, Liaw & Breiman 2004): each tree is fitted on a
//!   bootstrap of the positive rows plus `neg_ratio` times as many negative rows drawn with
//!   replacement, on a random subset of the features; trees come from `linfa-trees`, the
//!   bagging is ours so that it is seeded (reproducible) and balanced. Node values are the
//!   share of positive rows among the tree's own sample reaching the node.
//!
//! Deterministic: every random draw comes from a ChaCha RNG seeded from `ForestParams::seed`
//! and the tree's index; trees are fitted in parallel and collected in index order.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use linfa_trees::{DecisionTree, TreeNode};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::features::FEATURE_COUNT;
use crate::model::{Forest, Logistic, Tree};

/// Weight of a positive row in a tree's sample (see `fit_tree`).
const POSITIVE_WEIGHT: f32 = 1.0 + 1.0 / 8192.0;

/// Positive rows per tree at most: below 2048, sums of [`POSITIVE_WEIGHT`] are exact in f32.
pub const MAX_POSITIVES_PER_TREE: usize = 2047;

/// Logistic-regression settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogisticParams {
    /// L2 penalty (linfa's `alpha`, on the summed log-loss).
    pub alpha: f64,
    /// L-BFGS iterations at most.
    pub max_iterations: u64,
}

/// Forest settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForestParams {
    /// Trees.
    pub trees: usize,
    /// Maximum depth.
    pub max_depth: usize,
    /// Minimum samples in a leaf.
    pub min_leaf: f32,
    /// Negative rows per positive row in each tree's sample.
    pub neg_ratio: f64,
    /// Positive rows per tree (a bootstrap of this many; at most [`MAX_POSITIVES_PER_TREE`]).
    pub max_positives_per_tree: usize,
    /// Share of features each tree sees.
    pub feature_fraction: f64,
    /// RNG seed.
    pub seed: u64,
}

/// Row indices of attacker and benign rows; an error unless both classes are present.
fn split_classes(y: &[bool]) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    let positives: Vec<usize> = (0..y.len()).filter(|i| y[*i]).collect();
    let negatives: Vec<usize> = (0..y.len()).filter(|i| !y[*i]).collect();
    anyhow::ensure!(
        !positives.is_empty() && !negatives.is_empty(),
        "training data needs attacker and benign requests ({} and {})",
        positives.len(),
        negatives.len()
    );
    Ok((positives, negatives))
}

/// Mean and standard deviation of every feature (1 for a constant one).
fn scaling(x: &[[f64; FEATURE_COUNT]]) -> (Vec<f64>, Vec<f64>) {
    let n = x.len().max(1) as f64;
    let mut mean = vec![0.0; FEATURE_COUNT];
    for row in x {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n;
        }
    }
    let mut var = vec![0.0; FEATURE_COUNT];
    for row in x {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v - m).powi(2) / n;
        }
    }
    let scale = var
        .into_iter()
        .map(|v| if v > 1e-12 { v.sqrt() } else { 1.0 })
        .collect();
    (mean, scale)
}

/// Fit the logistic regression; returns the model and the replication factor used.
pub fn fit_logistic(
    x: &[[f64; FEATURE_COUNT]],
    y: &[bool],
    params: &LogisticParams,
) -> anyhow::Result<(Logistic, usize)> {
    let (positives, negatives) = split_classes(y)?;
    let repeat = ((negatives.len() as f64 / positives.len() as f64).round() as usize).max(1);
    let (mean, scale) = scaling(x);
    let n = negatives.len() + positives.len() * repeat;
    let mut records = Array2::<f64>::zeros((n, FEATURE_COUNT));
    let mut targets = Array1::<bool>::from_elem(n, false);
    let order = negatives.iter().copied().chain(
        positives
            .iter()
            .flat_map(|i| std::iter::repeat_n(*i, repeat)),
    );
    for (r, i) in order.enumerate() {
        for f in 0..FEATURE_COUNT {
            records[(r, f)] = (x[i][f] - mean[f]) / scale[f];
        }
        targets[r] = y[i];
    }
    let fitted = LogisticRegression::default()
        .alpha(params.alpha)
        .max_iterations(params.max_iterations)
        // The loss is a sum over rows: a tolerance per row keeps "converged" meaning the
        // same whatever the data size.
        .gradient_tolerance(1e-6 * n as f64)
        .fit(&Dataset::new(records, targets))
        .map_err(|e| anyhow::anyhow!("logistic regression: {e}"))?;
    // linfa calls the more frequent class "positive": flip so p is P(attacker).
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    Ok((
        Logistic {
            mean,
            scale,
            weights: fitted.params().iter().map(|w| sign * w).collect(),
            intercept: sign * fitted.intercept(),
        },
        repeat,
    ))
}

/// Fit the forest.
pub fn fit_forest(
    x: &[[f64; FEATURE_COUNT]],
    y: &[bool],
    params: &ForestParams,
) -> anyhow::Result<Forest> {
    let (positives, negatives) = split_classes(y)?;
    anyhow::ensure!(params.trees > 0, "--trees must be at least 1");
    let trees = (0..params.trees)
        .into_par_iter()
        .map(|k| fit_tree(x, &positives, &negatives, params, k))
        .collect::<anyhow::Result<Vec<Tree>>>()?;
    Ok(Forest { trees })
}

fn fit_tree(
    x: &[[f64; FEATURE_COUNT]],
    positives: &[usize],
    negatives: &[usize],
    params: &ForestParams,
    k: usize,
) -> anyhow::Result<Tree> {
    let mut rng = ChaCha8Rng::seed_from_u64(
        params
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(k as u64),
    );
    let n_pos = positives.len().min(
        params
            .max_positives_per_tree
            .clamp(1, MAX_POSITIVES_PER_TREE),
    );
    let n_neg = ((n_pos as f64 * params.neg_ratio).round() as usize).max(1);
    let mut sample: Vec<usize> = Vec::with_capacity(n_pos + n_neg);
    sample.extend((0..n_pos).map(|_| positives[rng.random_range(0..positives.len())]));
    sample.extend((0..n_neg).map(|_| negatives[rng.random_range(0..negatives.len())]));

    // A random subset of the features (partial Fisher–Yates), in index order.
    let m =
        ((FEATURE_COUNT as f64 * params.feature_fraction).ceil() as usize).clamp(1, FEATURE_COUNT);
    let mut all: Vec<usize> = (0..FEATURE_COUNT).collect();
    for i in 0..m {
        let j = rng.random_range(i..FEATURE_COUNT);
        all.swap(i, j);
    }
    let mut subset = all[..m].to_vec();
    subset.sort_unstable();

    let mut records = Array2::<f64>::zeros((sample.len(), m));
    let mut targets = Array1::<usize>::zeros(sample.len());
    for (r, i) in sample.iter().enumerate() {
        for (c, f) in subset.iter().enumerate() {
            records[(r, c)] = x[*i][*f];
        }
        targets[r] = usize::from(r < n_pos);
    }
    // linfa-trees breaks ties between equally weighted classes by hash-map order, which
    // changes predictions and so its pruning from run to run. Positive rows weigh
    // 1 + 2⁻¹³: with fewer than 2048 of them per tree their weighted sum is exact and never
    // an integer, so it never ties with the (integer) benign sum — trees are reproducible.
    let weights =
        Array1::from_iter((0..sample.len()).map(|r| if r < n_pos { POSITIVE_WEIGHT } else { 1.0 }));
    let fitted = DecisionTree::params()
        .max_depth(Some(params.max_depth))
        .min_weight_leaf(params.min_leaf)
        .min_weight_split(2.0 * params.min_leaf)
        .fit(&Dataset::new(records, targets).with_weights(weights))
        .map_err(|e| anyhow::anyhow!("decision tree {k}: {e}"))?;

    let mut tree = Tree {
        feature: Vec::new(),
        threshold: Vec::new(),
        left: Vec::new(),
        right: Vec::new(),
        value: Vec::new(),
    };
    export(fitted.root_node(), &subset, &mut tree)?;
    node_values(&mut tree, x, &sample, n_pos);
    Ok(tree)
}

/// Append `node` and its subtree in pre-order; returns its index.
fn export(node: &TreeNode<f64, usize>, subset: &[usize], tree: &mut Tree) -> anyhow::Result<u32> {
    let index = u32::try_from(tree.feature.len())?;
    tree.feature.push(-1);
    tree.threshold.push(0.0);
    tree.left.push(0);
    tree.right.push(0);
    tree.value.push(0.0);
    let children = node.children();
    if let (false, Some(left), Some(right)) = (node.is_leaf(), children[0], children[1]) {
        let (feature, threshold, _) = node.split();
        let i = index as usize;
        tree.feature[i] = i32::try_from(subset[feature])?;
        tree.threshold[i] = threshold;
        let l = export(left, subset, tree)?;
        let r = export(right, subset, tree)?;
        tree.left[i] = l;
        tree.right[i] = r;
    }
    Ok(index)
}

/// Share of positive rows (the first `n_pos` of `sample`) among the sample reaching each
/// node; a node no sample reached inherits its parent's value.
fn node_values(tree: &mut Tree, x: &[[f64; FEATURE_COUNT]], sample: &[usize], n_pos: usize) {
    let n = tree.feature.len();
    let mut positive = vec![0u64; n];
    let mut total = vec![0u64; n];
    for (r, i) in sample.iter().enumerate() {
        let row = &x[*i];
        let mut node = 0usize;
        loop {
            total[node] += 1;
            positive[node] += u64::from(r < n_pos);
            let Ok(feature) = usize::try_from(tree.feature[node]) else {
                break;
            };
            node = if row[feature] <= tree.threshold[node] {
                tree.left[node]
            } else {
                tree.right[node]
            } as usize;
        }
    }
    // Pre-order: a parent's value is set before its children's.
    for i in 0..n {
        let value = if total[i] > 0 {
            positive[i] as f64 / total[i] as f64
        } else {
            tree.value[i]
        };
        tree.value[i] = value;
        if tree.feature[i] >= 0 {
            for child in [tree.left[i] as usize, tree.right[i] as usize] {
                tree.value[child] = value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;

    /// Attacker rows have feature 0 high, or feature 7 set together with feature 10.
    fn toy(n: usize) -> (Vec<[f64; FEATURE_COUNT]>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let mut row = [0.0; FEATURE_COUNT];
            for v in row.iter_mut() {
                *v = rng.random_range(0.0..1.0);
            }
            row[7] = f64::from(u8::from(rng.random_bool(0.1)));
            let attack = i % 10 == 0;
            if attack {
                if i % 20 == 0 {
                    row[0] = rng.random_range(5.0..9.0);
                } else {
                    row[7] = 1.0;
                    row[10] = 1.0;
                }
            }
            x.push(row);
            y.push(attack);
        }
        (x, y)
    }

    #[test]
    fn both_models_separate_a_toy_problem() {
        let (x, y) = toy(2000);
        let (logistic, repeat) = fit_logistic(
            &x,
            &y,
            &LogisticParams {
                alpha: 1.0,
                max_iterations: 100,
            },
        )
        .expect("logistic");
        assert_eq!(repeat, 9);
        assert!(logistic.weights[0] > 0.0, "{:?}", logistic.weights);
        let params = ForestParams {
            trees: 8,
            max_depth: 6,
            min_leaf: 2.0,
            neg_ratio: 2.0,
            max_positives_per_tree: 1000,
            feature_fraction: 1.0,
            seed: 1,
        };
        let forest = fit_forest(&x, &y, &params).expect("forest");
        let again = fit_forest(&x, &y, &params).expect("forest");
        assert_eq!(forest, again, "seeded: the same forest twice");
        for model in [Model::Logistic(logistic), Model::Forest(forest)] {
            let mut quiet = [0.5; FEATURE_COUNT];
            quiet[7] = 0.0;
            quiet[10] = 0.0;
            let mut attack = quiet;
            attack[0] = 8.0;
            let (pa, pq) = (model.probability(&attack), model.probability(&quiet));
            assert!(pa > 0.5 && pq < 0.5, "{}: {pa} vs {pq}", model.kind());
            let mut c = [0.0; FEATURE_COUNT];
            model.explain(&attack, &mut c);
            let top = (0..FEATURE_COUNT)
                .max_by(|a, b| c[*a].total_cmp(&c[*b]))
                .unwrap_or(0);
            assert_eq!(top, 0, "{}: {c:?}", model.kind());
        }
    }

    #[test]
    fn exported_trees_are_consistent() {
        let (x, y) = toy(1000);
        let forest = fit_forest(
            &x,
            &y,
            &ForestParams {
                trees: 3,
                max_depth: 5,
                min_leaf: 2.0,
                neg_ratio: 1.0,
                max_positives_per_tree: 1000,
                feature_fraction: 0.5,
                seed: 9,
            },
        )
        .expect("forest");
        for tree in &forest.trees {
            assert!(tree.feature.len() > 1, "a tree that splits");
            // Saabas: root value plus the attributions equals the prediction.
            for row in x.iter().take(50) {
                let mut c = [0.0; FEATURE_COUNT];
                let single = Forest {
                    trees: vec![tree.clone()],
                };
                let p = Model::Forest(single).explain(row, &mut c);
                let sum: f64 = c.iter().sum();
                assert!((tree.value[0] + sum - p).abs() < 1e-12);
            }
        }
    }
}
