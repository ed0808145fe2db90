//! The customer-base models of the literature, as pure numerics: BG/NBD (Fader, Hardie & Lee
//! 2005, "Counting your customers the easy way") for how often a member buys and whether they
//! are still "alive", and Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value
//! curves") for what a repeat purchase is worth. This module owns their likelihoods, their
//! maximum-likelihood fits, the scores read from fitted parameters and the member's purchase
//! summary they read (`summary`); when the program fits is the callers' business. Time is in
//! weeks, as the papers report it; spend in the currency's major units.

pub mod backtest;
pub mod bgnbd;
pub mod sample;
pub mod score;
mod special;
pub mod spend;
pub mod summary;

use argmin::core::{CostFunction, Error, Executor, State};
use argmin::solver::neldermead::NelderMead;

/// Why a fit gave no parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    /// Fewer members than the model has parameters, or none who bought again: the likelihood
    /// has no maximum worth reporting.
    #[error("{0}")]
    TooFewMembers(&'static str),
    /// The optimiser stopped without a finite likelihood (data the model cannot describe).
    #[error("the fit did not converge: {0}")]
    NoConvergence(String),
}

/// The most Nelder-Mead iterations one fit may take, over all its restarts.
const MAX_ITERATIONS: u64 = 2_000;

/// No parameter is sought beyond e^±LOG_BOUND (≈ 5 × 10^±8).
const LOG_BOUND: f64 = 20.0;

/// The maximum of a log-likelihood over strictly positive parameters, found by Nelder-Mead in
/// log space (so no step leaves the domain), restarted from its own optimum until a restart no
/// longer improves it: a single Nelder-Mead run can stall on the flat ridges these likelihoods
/// have (r and alpha move together). Returns the parameters, the log-likelihood and the
/// iterations used.
pub(crate) fn maximise_positive<const N: usize>(
    start: [f64; N],
    log_likelihood: impl Fn(&[f64; N]) -> f64,
) -> Result<([f64; N], f64, u64), FitError> {
    /// The negative log-likelihood divided by its size at the start, so the simplex's
    /// tolerance is relative: a sum over 100,000 members carries noise far above any absolute
    /// tolerance, and the simplex would crawl along a ridge for ever.
    struct Negative<'a, const N: usize>(&'a dyn Fn(&[f64; N]) -> f64, f64);
    impl<const N: usize> CostFunction for Negative<'_, N> {
        type Param = Vec<f64>;
        type Output = f64;
        fn cost(&self, logs: &Vec<f64>) -> Result<f64, Error> {
            if logs.iter().any(|l| l.abs() > LOG_BOUND) {
                return Ok(f64::MAX);
            }
            let params: [f64; N] = std::array::from_fn(|i| logs[i].exp());
            let ll = (self.0)(&params);
            // A non-finite value (an overflow far from the optimum) is a very bad point, not an
            // error: the simplex moves away from it.
            Ok(if ll.is_finite() {
                -ll / self.1
            } else {
                f64::MAX
            })
        }
    }
    let scale = log_likelihood(&start).abs().max(1.0);
    let scale = if scale.is_finite() { scale } else { 1.0 };
    let mut best: Vec<f64> = start.iter().map(|p| p.ln()).collect();
    let mut best_cost = f64::INFINITY;
    let mut iterations = 0;
    // Bounded whatever the data: at most MAX_ITERATIONS in all, and no parameter beyond
    // e^±LOG_BOUND (a likelihood that keeps rising towards infinity along a ridge, as with
    // amounts that barely vary, would otherwise be followed for ever).
    while iterations < MAX_ITERATIONS {
        let mut simplex = vec![best.clone()];
        for i in 0..N {
            let mut v = best.clone();
            v[i] += 0.5;
            simplex.push(v);
        }
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(1e-11)
            .map_err(|e| FitError::NoConvergence(e.to_string()))?;
        let left = (MAX_ITERATIONS - iterations).min(500);
        let run = Executor::new(Negative(&log_likelihood, scale), solver)
            .configure(|s| s.max_iters(left))
            .run()
            .map_err(|e| FitError::NoConvergence(e.to_string()))?;
        let state = run.state();
        iterations += state.get_iter();
        let cost = state.get_best_cost();
        let Some(param) = state.get_best_param() else {
            return Err(FitError::NoConvergence("no best point".into()));
        };
        let improved = best_cost - cost;
        best = param.clone();
        best_cost = cost;
        // A round that moved the likelihood by less than a part in 10^9 is done; along a ridge
        // towards infinity (no heterogeneity to measure) it is as good as the limit.
        if improved.abs() < 1e-9 {
            break;
        }
    }
    if !best_cost.is_finite() || best_cost == f64::MAX {
        return Err(FitError::NoConvergence("no finite likelihood".into()));
    }
    Ok((
        std::array::from_fn(|i| best[i].exp()),
        -best_cost * scale,
        iterations,
    ))
}

/// Standard errors of a maximum-likelihood estimate: the square roots of the diagonal of the
/// inverse of the observed information (minus the Hessian of the log-likelihood at the
/// optimum, by central differences with steps relative to each parameter). None when the
/// information is not positive definite (the optimum is flat or not a maximum).
pub(crate) fn standard_errors<const N: usize>(
    at: [f64; N],
    log_likelihood: impl Fn(&[f64; N]) -> f64,
) -> Option<[f64; N]> {
    let h: [f64; N] = std::array::from_fn(|i| 1e-4 * at[i].abs().max(1e-3));
    let ll = |di: usize, si: f64, dj: usize, sj: f64| {
        let mut p = at;
        p[di] += si * h[di];
        p[dj] += sj * h[dj];
        log_likelihood(&p)
    };
    let mut info = [[0.0; N]; N];
    for i in 0..N {
        for j in 0..N {
            let d2 = (ll(i, 1.0, j, 1.0) - ll(i, 1.0, j, -1.0) - ll(i, -1.0, j, 1.0)
                + ll(i, -1.0, j, -1.0))
                / (4.0 * h[i] * h[j]);
            info[i][j] = -d2;
        }
    }
    let inverse = invert(info)?;
    let mut out = [0.0; N];
    for i in 0..N {
        if inverse[i][i] <= 0.0 || !inverse[i][i].is_finite() {
            return None;
        }
        out[i] = inverse[i][i].sqrt();
    }
    Some(out)
}

/// The inverse of a small square matrix by Gauss-Jordan elimination with partial pivoting;
/// None when it is singular.
fn invert<const N: usize>(mut m: [[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let mut inv = [[0.0; N]; N];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for col in 0..N {
        let pivot = (col..N).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-300 {
            return None;
        }
        m.swap(col, pivot);
        inv.swap(col, pivot);
        let d = m[col][col];
        for k in 0..N {
            m[col][k] /= d;
            inv[col][k] /= d;
        }
        for row in 0..N {
            if row != col {
                let f = m[row][col];
                for k in 0..N {
                    m[row][k] -= f * m[col][k];
                    inv[row][k] -= f * inv[col][k];
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [[4, 7], [2, 6]]⁻¹ = [[0.6, -0.7], [-0.2, 0.4]] (determinant 10, by hand); a singular
    /// matrix has none.
    #[test]
    fn invert_matches_the_inverse_by_hand_and_refuses_a_singular_matrix() {
        let inv = invert([[4.0, 7.0], [2.0, 6.0]]).unwrap();
        let want = [[0.6, -0.7], [-0.2, 0.4]];
        for i in 0..2 {
            for j in 0..2 {
                assert!((inv[i][j] - want[i][j]).abs() < 1e-12, "{inv:?}");
            }
        }
        assert_eq!(invert([[1.0, 2.0], [2.0, 4.0]]), None);
    }

    /// For n draws of a normal with known variance 4, the log-likelihood of the mean is
    /// -Σ(x - μ)² / 8: its standard error is sqrt(4 / n) = 0.2 for n = 100, whatever the data.
    #[test]
    fn standard_error_of_a_normal_mean_is_sigma_over_root_n() {
        let xs: Vec<f64> = (0..100).map(|i| f64::from(i % 7) + 3.0).collect();
        let mean = xs.iter().sum::<f64>() / 100.0;
        let ll = |m: &[f64; 1]| -xs.iter().map(|x| (x - m[0]).powi(2)).sum::<f64>() / 8.0;
        let [se] = standard_errors([mean], ll).unwrap();
        assert!((se - 0.2).abs() < 1e-4, "{se}");
    }
}
