//! The special functions the models need and statrs does not have: the Gaussian hypergeometric
//! function on [0, 1) and a log of a sum of exponentials that does not overflow.

/// ln(e^a + e^b), without overflow for large exponents.
pub(crate) fn ln_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// The Gaussian hypergeometric function 2F1(a, b; c; z) for 0 <= z < 1 by its power series,
/// summed until a term no longer changes the sum. The models call it with
/// z = t / (alpha + T + t), below one for any fitted alpha; the series converges geometrically
/// there (about 400 terms at z = 0.92, a year's horizon for a member who bought today).
pub(crate) fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    debug_assert!(
        (0.0..1.0).contains(&z),
        "hyp2f1 is summed for 0 <= z < 1, not {z}"
    );
    let (mut term, mut sum) = (1.0_f64, 1.0_f64);
    for n in 0..200_000 {
        let n = f64::from(n);
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if term.abs() <= f64::EPSILON * sum.abs() {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tol: f64) {
        assert!(
            (got - want).abs() <= tol * want.abs().max(1.0),
            "got {got}, want {want}"
        );
    }

    /// Closed forms of the hypergeometric function (Abramowitz & Stegun 15.1.3, 15.1.8, 15.1.4)
    /// and a terminating series summed by hand.
    #[test]
    fn hyp2f1_matches_its_closed_forms() {
        for z in [0.0_f64, 0.1, 0.5, 0.9, 0.95] {
            // 2F1(1, 1; 2; z) = -ln(1 - z) / z
            let want = if z == 0.0 { 1.0 } else { -(1.0 - z).ln() / z };
            close(hyp2f1(1.0, 1.0, 2.0, z), want, 1e-12);
            // 2F1(a, b; b; z) = (1 - z)^-a
            close(hyp2f1(0.7, 2.5, 2.5, z), (1.0 - z).powf(-0.7), 1e-12);
            // 2F1(1/2, 1; 3/2; z^2) = atanh(z) / z
            let want = if z == 0.0 { 1.0 } else { z.atanh() / z };
            close(hyp2f1(0.5, 1.0, 1.5, z * z), want, 1e-12);
        }
        // A polynomial when a is a negative integer, summed by hand:
        // 2F1(-2, 3; 4; 0.5) = 1 - (2*3/4)(0.5) + (3*4/(4*5))(0.25) = 1 - 0.75 + 0.15 = 0.4
        close(hyp2f1(-2.0, 3.0, 4.0, 0.5), 0.4, 1e-15);
    }

    #[test]
    fn ln_add_exp_does_not_overflow() {
        close(ln_add_exp(0.0, 0.0), std::f64::consts::LN_2, 1e-15);
        close(
            ln_add_exp(1000.0, 1000.0),
            1000.0 + std::f64::consts::LN_2,
            1e-15,
        );
        close(ln_add_exp(-1000.0, 0.0), 0.0, 1e-15);
        assert_eq!(
            ln_add_exp(f64::NEG_INFINITY, f64::NEG_INFINITY),
            f64::NEG_INFINITY
        );
    }
}
