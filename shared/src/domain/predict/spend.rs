//! Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"; Colombo & Jiang 1999): a member's
//! purchase amounts vary around their own mean, Gamma(p, ν) with ν varying across members as
//! Gamma(q, γ). It reads a repeat buyer's number of repeat purchases and their mean amount, and
//! assumes amounts do not depend on how often the member buys (check it: the correlation
//! between x and the mean should be weak).

use super::{FitError, maximise_positive};
use serde::{Deserialize, Serialize};
use statrs::function::gamma::ln_gamma;

/// A repeat buyer's spend as the model reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spend {
    /// Repeat purchases (at least one).
    pub x: u32,
    /// Their mean amount, in the currency's major units (positive).
    pub mean: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = GammaGammaParams)]
pub struct Params {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub params: Params,
    pub log_likelihood: f64,
    pub members: usize,
    pub iterations: u64,
}

impl Params {
    /// One member's log-likelihood of their mean amount (the density of z̄ given x):
    /// lnΓ(px + q) - lnΓ(px) - lnΓ(q) + q ln γ + (px - 1) ln z̄ + px ln x - (px + q) ln(γ + x z̄).
    pub fn log_likelihood(&self, s: &Spend) -> f64 {
        let Params { p, q, gamma } = *self;
        let (x, m) = (f64::from(s.x), s.mean);
        ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
            + q * gamma.ln()
            + (p * x - 1.0) * m.ln()
            + p * x * x.ln()
            - (p * x + q) * (gamma + x * m).ln()
    }

    /// The expected amount of the member's next purchase (eq. 5): a weighted mean of the
    /// population's mean p γ / (q - 1) and the member's own, weighted by how many purchases
    /// the member's mean rests on. With no repeat purchase it is the population's mean.
    /// Meaningful for q > 1 (a population mean exists).
    pub fn expected_spend(&self, s: Option<&Spend>) -> f64 {
        let Params { p, q, gamma } = *self;
        match s {
            Some(s) if s.x > 0 => {
                let x = f64::from(s.x);
                (gamma + x * s.mean) * p / (p * x + q - 1.0)
            }
            _ => p * gamma / (q - 1.0),
        }
    }
}

/// Fits p, q and γ by maximum likelihood over the repeat buyers with a positive mean.
pub fn fit(spends: &[Spend]) -> Result<Fit, FitError> {
    let usable: Vec<Spend> = spends
        .iter()
        .filter(|s| s.x > 0 && s.mean > 0.0 && s.mean.is_finite())
        .copied()
        .collect();
    if usable.len() < 3 {
        return Err(FitError::TooFewMembers(
            "the spend model needs at least three repeat buyers with a positive mean",
        ));
    }
    let log_likelihood = |v: &[f64; 3]| {
        let params = Params {
            p: v[0],
            q: v[1],
            gamma: v[2],
        };
        usable.iter().map(|s| params.log_likelihood(s)).sum::<f64>()
    };
    let ([p, q, gamma], ll, iterations) = maximise_positive([1.0, 1.0, 1.0], log_likelihood)?;
    Ok(Fit {
        params: Params { p, q, gamma },
        log_likelihood: ll,
        members: usable.len(),
        iterations,
    })
}

/// Mean amounts drawn from the model for members with the given repeat purchases (none for
/// x = 0): each member's ν ~ Gamma(q, rate γ), each amount ~ Gamma(p, rate ν).
pub fn simulate(p: Params, repeats: &[u32], seed: u64) -> Vec<Spend> {
    use rand::SeedableRng;
    use rand_distr::{Distribution, Gamma};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let scales = Gamma::new(p.q, 1.0 / p.gamma).expect("q and gamma are positive");
    repeats
        .iter()
        .map(|&x| {
            let nu = scales.sample(&mut rng).max(1e-12);
            let amounts = Gamma::new(p.p, 1.0 / nu).expect("positive shape and rate");
            let total: f64 = (0..x).map(|_| amounts.sample(&mut rng)).sum();
            Spend {
                x,
                mean: if x == 0 { 0.0 } else { total / f64::from(x) },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's estimates for the CDNOW sample.
    const CDNOW: Params = Params {
        p: 6.25,
        q: 3.74,
        gamma: 15.44,
    };

    /// Worked by hand from eq. 5: a member with x = 2 repeat purchases averaging $22.35:
    /// (15.44 + 2 × 22.35) × 6.25 / (6.25 × 2 + 3.74 - 1) = 60.14 × 6.25 / 15.24 = 24.664;
    /// with none, the population mean 6.25 × 15.44 / 2.74 = 35.219.
    #[test]
    fn expected_spend_is_the_weighted_mean_worked_by_hand() {
        let s = Spend { x: 2, mean: 22.35 };
        assert!((CDNOW.expected_spend(Some(&s)) - 24.664).abs() < 1e-3);
        assert!((CDNOW.expected_spend(None) - 35.219).abs() < 1e-3);
    }

    /// The more purchases a member's mean rests on, the closer the expectation is to it.
    #[test]
    fn expected_spend_moves_toward_the_members_own_mean_with_more_purchases() {
        let mut last_gap = f64::INFINITY;
        for x in [1, 2, 5, 20, 100] {
            let gap = (CDNOW.expected_spend(Some(&Spend { x, mean: 80.0 })) - 80.0).abs();
            assert!(gap < last_gap, "x = {x}: {gap} after {last_gap}");
            last_gap = gap;
        }
    }

    /// Recovery, as for BG/NBD: amounts drawn from known parameters are fitted back within
    /// a tenth of each (2,000 repeat buyers of 1 to 10 purchases; fixed seed).
    #[test]
    fn fit_recovers_known_parameters_from_simulated_amounts() {
        let repeats: Vec<u32> = (0..2_000).map(|i| 1 + i % 10).collect();
        let fit = fit(&simulate(CDNOW, &repeats, 21)).unwrap();
        for (what, got, want) in [
            ("p", fit.params.p, CDNOW.p),
            ("q", fit.params.q, CDNOW.q),
            ("gamma", fit.params.gamma, CDNOW.gamma),
        ] {
            assert!(
                (got - want).abs() <= 0.1 * want,
                "{what}: fitted {got}, true {want}"
            );
        }
    }

    /// Every member's mean the same: no variation to measure, so the likelihood rises for ever
    /// as the parameters grow (p and q here, towards a point mass). The fit still ends, within
    /// its bound, at a model that predicts that mean for everyone.
    #[test]
    fn a_likelihood_rising_along_a_ridge_still_ends_within_the_bound() {
        let same: Vec<Spend> = (0..500)
            .map(|i| Spend {
                x: 1 + i % 5,
                mean: 12.5,
            })
            .collect();
        let f = fit(&same).unwrap();
        assert!(f.iterations <= 2_000, "{} iterations", f.iterations);
        assert!(f.params.p > 1e3 && f.params.q > 1e3, "{:?}", f.params);
        let one = Spend { x: 1, mean: 12.5 };
        assert!((f.params.expected_spend(Some(&one)) - 12.5).abs() < 0.01);
    }

    #[test]
    fn fit_ignores_one_time_buyers_and_refuses_too_few_repeat_buyers() {
        let spends = [
            Spend { x: 0, mean: 0.0 },
            Spend { x: 1, mean: 10.0 },
            Spend { x: 2, mean: -5.0 },
            Spend { x: 3, mean: 12.0 },
        ];
        assert!(matches!(fit(&spends), Err(FitError::TooFewMembers(_))));
    }
}
