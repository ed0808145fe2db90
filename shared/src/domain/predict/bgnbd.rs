//! BG/NBD (Fader, Hardie & Lee 2005): while alive, a member buys as a Poisson process with a
//! rate λ that varies across members as Gamma(r, alpha); after each repeat purchase they leave
//! for good with a probability p that varies as Beta(a, b). The likelihood of a member needs
//! only their repeat purchases x, the time of the last one t_x and their age T (weeks since the
//! first purchase); the equations cited are the paper's.

use super::special::{hyp2f1, ln_add_exp};
use super::{FitError, maximise_positive, standard_errors};
use serde::{Deserialize, Serialize};
use statrs::function::gamma::ln_gamma;
use std::collections::HashMap;

/// What the model reads of one member.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Repeat purchases (the first is not counted).
    pub x: u32,
    /// Weeks from the first purchase to the last (0 when there is no repeat purchase).
    pub t_x: f64,
    /// Weeks from the first purchase to the end of observation: the paper's T.
    pub age: f64,
}

/// The four parameters of the mixing distributions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = BgNbdParams)]
pub struct Params {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// A maximum-likelihood fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub params: Params,
    /// The log-likelihood at the optimum, summed over the members.
    pub log_likelihood: f64,
    pub members: usize,
    /// Distinct (x, t_x, T) the likelihood was evaluated over: the cost of each iteration.
    pub distinct: usize,
    pub iterations: u64,
    /// Standard errors of r, alpha, a and b (the observed information's inverse); None when the
    /// likelihood is flat at the optimum.
    pub standard_errors: Option<Params>,
}

impl Params {
    fn of(v: &[f64; 4]) -> Params {
        Params {
            r: v[0],
            alpha: v[1],
            a: v[2],
            b: v[3],
        }
    }

    /// One member's log-likelihood (eq. 6 in logs: A1 + A2 + ln(e^A3 + δ e^A4)).
    pub fn log_likelihood(&self, s: &Summary) -> f64 {
        self.count_terms(s.x) + self.time_terms(s)
    }

    /// A1 + A2: the part of the log-likelihood that depends on x alone, so a fit computes it
    /// once per distinct x (its log-gammas are most of an evaluation's cost).
    fn count_terms(&self, x: u32) -> f64 {
        let Params { r, alpha, a, b } = *self;
        let x = f64::from(x);
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        a1 + a2
    }

    /// ln(e^A3 + δ e^A4): the part that depends on the times.
    fn time_terms(&self, s: &Summary) -> f64 {
        let Params { r, alpha, a, b } = *self;
        let x = f64::from(s.x);
        let a3 = -(r + x) * (alpha + s.age).ln();
        if s.x == 0 {
            return a3;
        }
        let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + s.t_x).ln();
        ln_add_exp(a3, a4)
    }

    /// ln of the odds that the member has left: ln(a / (b + x - 1)) + (r + x) ln((alpha + T) /
    /// (alpha + t_x)); minus infinity with no repeat purchase (they cannot have left).
    fn ln_odds_gone(&self, s: &Summary) -> f64 {
        if s.x == 0 {
            return f64::NEG_INFINITY;
        }
        let x = f64::from(s.x);
        self.a.ln() - (self.b + x - 1.0).ln()
            + (self.r + x) * ((self.alpha + s.age).ln() - (self.alpha + s.t_x).ln())
    }

    /// P(alive | x, t_x, T) (eq. 11 of the paper's technical note): 1 with no repeat purchase.
    pub fn p_alive(&self, s: &Summary) -> f64 {
        1.0 / (1.0 + self.ln_odds_gone(s).exp())
    }

    /// Expected purchases in the next `weeks` given the history (eq. 10).
    pub fn expected_purchases(&self, s: &Summary, weeks: f64) -> f64 {
        // The formula divides by a - 1; at a = 1 it is the limit, taken as the mean of the two
        // sides (the expression is smooth in a).
        if (self.a - 1.0).abs() < 1e-7 {
            let side = |a| Params { a, ..*self }.expected_purchases(s, weeks);
            return (side(1.0 - 1e-6) + side(1.0 + 1e-6)) / 2.0;
        }
        if weeks <= 0.0 {
            return 0.0;
        }
        let Params { r, alpha, a, b } = *self;
        let x = f64::from(s.x);
        let horizon = alpha + s.age + weeks;
        let z = weeks / horizon;
        let tail = ((r + x) * ((alpha + s.age) / horizon).ln()).exp()
            * hyp2f1(r + x, b + x, a + b + x - 1.0, z);
        (a + b + x - 1.0) / (a - 1.0) * (1.0 - tail) * self.p_alive(s)
    }

    /// P(no purchase in the next `weeks`): gone, or alive and buying nothing in that time.
    pub fn churn_probability(&self, s: &Summary, weeks: f64) -> f64 {
        let alive = self.p_alive(s);
        let x = f64::from(s.x);
        let quiet = ((self.r + x)
            * ((self.alpha + s.age) / (self.alpha + s.age + weeks.max(0.0))).ln())
        .exp();
        1.0 - alive + alive * quiet
    }
}

/// Fits the parameters by maximum likelihood. Members with the same (x, t_x, T) are evaluated
/// once and weighted, so an iteration costs the distinct histories, not the members.
pub fn fit(summaries: &[Summary]) -> Result<Fit, FitError> {
    if summaries.len() < 4 {
        return Err(FitError::TooFewMembers(
            "the model has four parameters: it needs at least four purchasing members",
        ));
    }
    if summaries.iter().all(|s| s.x == 0) {
        return Err(FitError::TooFewMembers(
            "no member has bought again: the purchase rate and the dropout cannot be told apart",
        ));
    }
    let mut weights: HashMap<(u32, u64, u64), f64> = HashMap::new();
    for s in summaries {
        *weights
            .entry((s.x, s.t_x.to_bits(), s.age.to_bits()))
            .or_default() += 1.0;
    }
    let mut rows: Vec<(Summary, f64)> = weights
        .into_iter()
        .map(|((x, t_x, age), w)| {
            let (t_x, age) = (f64::from_bits(t_x), f64::from_bits(age));
            (Summary { x, t_x, age }, w)
        })
        .collect();
    // By x, so each evaluation computes the log-gammas once per distinct x.
    rows.sort_by_key(|(s, _)| s.x);
    let log_likelihood = |p: &[f64; 4]| {
        let params = Params::of(p);
        let (mut total, mut at, mut counts) = (0.0, None, 0.0);
        for (s, w) in &rows {
            if at != Some(s.x) {
                at = Some(s.x);
                counts = params.count_terms(s.x);
            }
            total += w * (counts + params.time_terms(s));
        }
        total
    };
    // Every parameter starts at 1, as lifetimes starts; the restarts take it from there.
    let (best, ll, iterations) = maximise_positive([1.0, 1.0, 1.0, 1.0], log_likelihood)?;
    Ok(Fit {
        params: Params::of(&best),
        log_likelihood: ll,
        members: summaries.len(),
        distinct: rows.len(),
        iterations,
        standard_errors: standard_errors(best, log_likelihood).map(|v| Params::of(&v)),
    })
}

/// Members drawn from the model itself, for the recovery test, the benchmark and the README's
/// walkthrough: λ ~ Gamma(r, 1/alpha), p ~ Beta(a, b); purchases at exponential gaps while
/// alive, a coin of weight p after each repeat purchase; cohorts observed for 26 to 78 weeks
/// (member i for 26 + i mod 53). The same seed gives the same members.
pub fn simulate(p: Params, members: usize, seed: u64) -> Vec<Summary> {
    use rand::{RngExt, SeedableRng};
    use rand_distr::{Beta, Distribution, Exp, Gamma};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rates = Gamma::new(p.r, 1.0 / p.alpha).expect("r and alpha are positive");
    let dropouts = Beta::new(p.a, p.b).expect("a and b are positive");
    (0..members)
        .map(|i| {
            let age = 26.0 + (i % 53) as f64;
            let rate = rates.sample(&mut rng).max(1e-12);
            let dropout = dropouts.sample(&mut rng);
            let gap = Exp::new(rate).expect("a positive rate");
            let (mut t, mut x, mut t_x) = (0.0, 0, 0.0);
            loop {
                t += gap.sample(&mut rng);
                if t > age {
                    break;
                }
                x += 1;
                t_x = t;
                if rng.random::<f64>() < dropout {
                    break;
                }
            }
            Summary { x, t_x, age }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's estimates for the CDNOW sample (Table 1 of the technical note).
    const CDNOW: Params = Params {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };

    fn close(got: f64, want: f64, tol: f64) {
        assert!(
            (got - want).abs() <= tol,
            "got {got}, want {want} (± {tol})"
        );
    }

    /// Values worked with a calculator from the equations (ln Γ from tables), not by this code:
    /// for x = 0, T = 38.86:
    /// A1 = lnΓ(0.243) - lnΓ(0.243) + 0.243 ln 4.414 = 0.243 × 1.48480 = 0.36081
    /// A2 = 0 (x = 0), A3 = -0.243 ln 43.274 = -0.243 × 3.76755 = -0.91551
    /// ln L = -0.55471.
    #[test]
    fn log_likelihood_of_a_member_who_never_came_back_is_a1_plus_a3() {
        let s = Summary {
            x: 0,
            t_x: 0.0,
            age: 38.86,
        };
        close(CDNOW.log_likelihood(&s), -0.55471, 1e-5);
        assert_eq!(CDNOW.p_alive(&s), 1.0);
    }

    /// CDNOW customer 1 (x = 2, t_x = 30.43, T = 38.86):
    /// odds gone = a / (b + x - 1) × ((α + T) / (α + t_x))^(r + x)
    ///           = 0.793 / 3.426 × (43.274 / 34.844)^2.243 = 0.231465 × 1.625789 = 0.376314
    /// P(alive) = 1 / 1.376314 = 0.72658.
    /// P(no purchase in 39 weeks) = 1 - 0.72658 + 0.72658 × (43.274 / 82.274)^2.243
    ///                            = 0.27342 + 0.72658 × 0.236659 = 0.44537.
    #[test]
    fn p_alive_and_churn_of_cdnow_customer_one_match_the_equations_by_hand() {
        let s = Summary {
            x: 2,
            t_x: 30.43,
            age: 38.86,
        };
        close(CDNOW.p_alive(&s), 0.72658, 1e-5);
        close(CDNOW.churn_probability(&s, 39.0), 0.44537, 1e-5);
    }

    /// The paper's worked example: customer 1516 (x = 26, t_x = 30.86, T = 31) is expected to
    /// make 25.76 purchases in the next 52 weeks.
    #[test]
    fn expected_purchases_of_customer_1516_is_the_papers_25_76() {
        let s = Summary {
            x: 26,
            t_x: 30.86,
            age: 31.0,
        };
        close(CDNOW.expected_purchases(&s, 52.0), 25.76, 0.005);
    }

    /// An independent implementation: the PyPI package `lifetimes` 0.11.3 (scipy's hyp2f1),
    /// `BetaGeoFitter` with `params_` set to the paper's four values, then
    /// `conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T)` for t = 39 and 52
    /// and `conditional_probability_alive(x, t_x, T)`; printed with repr and rounded to 9
    /// places here.
    #[test]
    fn scores_equal_what_lifetimes_computes_for_the_same_parameters() {
        let table = [
            // x, t_x, T, E[Y(39)], E[Y(52)], P(alive)
            (26, 30.86, 31.0, 20.749726141, 25.758195936, 0.968915650),
            (2, 30.43, 38.86, 1.226028175, 1.558720806, 0.726578570),
            (1, 1.71, 38.86, 0.203186987, 0.259823465, 0.212100985),
            (0, 0.0, 38.86, 0.195098052, 0.252073022, 1.0),
            (5, 10.0, 38.0, 0.106376395, 0.134078388, 0.027481580),
            (14, 36.57, 38.86, 9.031339304, 11.321350599, 0.899672506),
        ];
        for (x, t_x, age, e39, e52, alive) in table {
            let s = Summary { x, t_x, age };
            close(CDNOW.expected_purchases(&s, 39.0), e39, 1e-8);
            close(CDNOW.expected_purchases(&s, 52.0), e52, 1e-8);
            close(CDNOW.p_alive(&s), alive, 1e-8);
        }
    }

    #[test]
    fn expected_purchases_grow_with_the_horizon_and_start_at_zero() {
        let s = Summary {
            x: 3,
            t_x: 20.0,
            age: 30.0,
        };
        assert_eq!(CDNOW.expected_purchases(&s, 0.0), 0.0);
        let mut last = 0.0;
        for weeks in [1.0, 4.0, 13.0, 52.0, 104.0] {
            let e = CDNOW.expected_purchases(&s, weeks);
            assert!(e > last, "{weeks} weeks: {e} after {last}");
            last = e;
        }
    }

    #[test]
    fn expected_purchases_at_a_equal_to_one_is_the_limit_of_its_sides() {
        let s = Summary {
            x: 4,
            t_x: 25.0,
            age: 30.0,
        };
        let at = |a| Params { a, ..CDNOW }.expected_purchases(&s, 52.0);
        let limit = at(1.0);
        assert!(limit.is_finite());
        close(limit, at(1.001), 1e-2);
        close(limit, at(0.999), 1e-2);
    }

    /// A member who bought often and then stopped long ago is less likely alive than one who
    /// bought as often and recently; both less than one who never came back (who cannot have
    /// left, in this model).
    #[test]
    fn p_alive_falls_with_the_silence_since_the_last_purchase() {
        let recent = Summary {
            x: 5,
            t_x: 37.0,
            age: 38.0,
        };
        let long_ago = Summary {
            t_x: 10.0,
            ..recent
        };
        assert!(CDNOW.p_alive(&long_ago) < CDNOW.p_alive(&recent));
        assert!(CDNOW.p_alive(&recent) < 1.0);
    }

    /// Recovery: members simulated from known parameters are fitted back within three
    /// standard errors, for parameter sets around the literature's (CDNOW's, a frequent and
    /// loyal base, a slow and fickle one). Seeds are fixed: the same draws every run.
    #[test]
    fn fit_recovers_known_parameters_within_three_standard_errors() {
        let sets = [
            (CDNOW, 11),
            (
                Params {
                    r: 1.5,
                    alpha: 6.0,
                    a: 1.2,
                    b: 6.0,
                },
                12,
            ),
            (
                Params {
                    r: 0.5,
                    alpha: 12.0,
                    a: 0.6,
                    b: 1.5,
                },
                13,
            ),
            (
                Params {
                    r: 0.9,
                    alpha: 3.0,
                    a: 2.0,
                    b: 3.0,
                },
                14,
            ),
        ];
        for (truth, seed) in sets {
            let fit = fit(&simulate(truth, 3_000, seed)).unwrap();
            let se = fit
                .standard_errors
                .expect("a curved likelihood at the optimum");
            for (what, got, want, err) in [
                ("r", fit.params.r, truth.r, se.r),
                ("alpha", fit.params.alpha, truth.alpha, se.alpha),
                ("a", fit.params.a, truth.a, se.a),
                ("b", fit.params.b, truth.b, se.b),
            ] {
                assert!(
                    (got - want).abs() <= 3.0 * err,
                    "{truth:?}: {what} fitted {got} ± {err}, true {want}"
                );
            }
        }
    }

    #[test]
    fn fit_refuses_too_few_members_or_no_repeat_buyer() {
        let s = Summary {
            x: 0,
            t_x: 0.0,
            age: 10.0,
        };
        assert!(matches!(fit(&[s; 3]), Err(FitError::TooFewMembers(_))));
        assert!(matches!(fit(&[s; 50]), Err(FitError::TooFewMembers(_))));
    }
}
