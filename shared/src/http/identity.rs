//! The caller, as API Gateway's JWT authorizer describes them in the v2 request context
//! (`requestContext.authorizer.jwt.claims`). Functions never verify signatures: the authorizer
//! (or `loyalty-local`, playing its part) already did.

use super::Problem;
use crate::domain::{MemberId, StoreId};
use axum::extract::FromRequestParts;
use http::request::Parts;
use lambda_http::request::RequestContext;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Admin { sub: String },
    Pos { sub: String, store: StoreId },
    Member { id: MemberId },
}

pub const ADMIN_SCOPE: &str = "loyalty/admin";
pub const POS_SCOPE: &str = "loyalty/pos";

impl Caller {
    /// Builds the caller from JWT claims (`sub`, `scope` separated by spaces, `store_id`) and the
    /// authorizer's `scopes` list.
    pub fn from_claims(
        claims: &std::collections::HashMap<String, String>,
        scopes: Option<&[String]>,
    ) -> Result<Caller, Problem> {
        let sub = claims
            .get("sub")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Problem::unauthorized("the token has no subject"))?;
        let has = |want: &str| {
            claims
                .get("scope")
                // Scopes are separated by spaces (RFC 8693), nothing else: a non-breaking space
                // must not split "x\u{a0}loyalty/admin" into a grant.
                .is_some_and(|s| s.split(' ').any(|x| x == want))
                || scopes.is_some_and(|l| l.iter().any(|x| x == want))
        };
        if has(ADMIN_SCOPE) {
            return Ok(Caller::Admin { sub: sub.clone() });
        }
        if has(POS_SCOPE) {
            let store = claims
                .get("store_id")
                .and_then(|s| StoreId::parse(s).ok())
                .ok_or_else(|| {
                    Problem::unauthorized("a POS token must carry a valid store_id claim")
                })?;
            return Ok(Caller::Pos {
                sub: sub.clone(),
                store,
            });
        }
        let id = MemberId::parse(sub)
            .map_err(|_| Problem::unauthorized("the token's subject is not a usable member id"))?;
        Ok(Caller::Member { id })
    }

    /// Who owns an `Idempotency-Key`: keys of different callers never collide.
    pub fn principal(&self) -> String {
        match self {
            Caller::Admin { sub } => format!("admin:{sub}"),
            Caller::Pos { sub, store } => format!("pos:{store}:{sub}"),
            Caller::Member { id } => format!("member:{id}"),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::Admin { .. })
    }

    pub fn require_admin(&self) -> Result<(), Problem> {
        match self {
            Caller::Admin { .. } => Ok(()),
            _ => Err(Problem::forbidden("this needs an administrator")),
        }
    }

    /// The member themself or an administrator (a POS may not).
    pub fn require_self_or_admin(&self, id: &MemberId) -> Result<(), Problem> {
        match self {
            Caller::Admin { .. } => Ok(()),
            Caller::Member { id: me } if me == id => Ok(()),
            _ => Err(Problem::forbidden(
                "you may only access your own membership",
            )),
        }
    }

    /// The member themself, a POS or an administrator.
    pub fn require_self_pos_or_admin(&self, id: &MemberId) -> Result<(), Problem> {
        match self {
            Caller::Pos { .. } => Ok(()),
            other => other.require_self_or_admin(id),
        }
    }

    /// A POS acting for `store` (its own only) or an administrator.
    pub fn require_store(&self, store: &StoreId) -> Result<(), Problem> {
        match self {
            Caller::Admin { .. } => Ok(()),
            Caller::Pos { store: mine, .. } if mine == store => Ok(()),
            Caller::Pos { .. } => Err(Problem::forbidden(
                "a POS token may only act for its own store",
            )),
            Caller::Member { .. } => Err(Problem::forbidden(
                "this needs a POS or administrator token",
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let jwt = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref())
            }
            _ => None,
        };
        let jwt = jwt.ok_or_else(|| Problem::unauthorized("missing or invalid bearer token"))?;
        Caller::from_claims(&jwt.claims, jwt.scopes.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn roles_from_claims_table() {
        let admin = claims(&[("sub", "ops"), ("scope", "openid loyalty/admin")]);
        let pos = claims(&[
            ("sub", "till-1"),
            ("scope", "loyalty/pos"),
            ("store_id", "s1"),
        ]);
        let pos_no_store = claims(&[("sub", "till-1"), ("scope", "loyalty/pos")]);
        let member = claims(&[("sub", "m-1"), ("scope", "openid")]);
        let bad_sub = claims(&[("sub", "a#b")]);
        let no_sub = claims(&[("scope", "loyalty/admin")]);
        assert!(matches!(
            Caller::from_claims(&admin, None),
            Ok(Caller::Admin { .. })
        ));
        assert!(matches!(
            Caller::from_claims(&pos, None),
            Ok(Caller::Pos { .. })
        ));
        assert!(Caller::from_claims(&pos_no_store, None).is_err());
        assert!(matches!(
            Caller::from_claims(&member, None),
            Ok(Caller::Member { .. })
        ));
        assert!(Caller::from_claims(&bad_sub, None).is_err());
        assert!(Caller::from_claims(&no_sub, None).is_err());
        let scoped = claims(&[("sub", "ops")]);
        let list = vec!["loyalty/admin".to_string()];
        assert!(matches!(
            Caller::from_claims(&scoped, Some(&list)),
            Ok(Caller::Admin { .. })
        ));
    }

    #[test]
    fn only_a_plain_space_separates_scopes() {
        for (scope, admin) in [
            ("openid loyalty/admin", true),
            ("loyalty/admin", true),
            ("openid\u{a0}loyalty/admin", false),
            ("openid\tloyalty/admin", false),
            ("openid\nloyalty/admin", false),
            ("openid\u{2003}loyalty/admin", false),
        ] {
            let c = claims(&[("sub", "m-1"), ("scope", scope)]);
            let is_admin = matches!(Caller::from_claims(&c, None), Ok(Caller::Admin { .. }));
            assert_eq!(is_admin, admin, "{scope:?}");
        }
    }

    #[test]
    fn access_rules_table() {
        let m1 = MemberId::parse("m1").unwrap();
        let m2 = MemberId::parse("m2").unwrap();
        let s1 = StoreId::parse("s1").unwrap();
        let s2 = StoreId::parse("s2").unwrap();
        let admin = Caller::Admin { sub: "a".into() };
        let pos = Caller::Pos {
            sub: "p".into(),
            store: s1.clone(),
        };
        let me = Caller::Member { id: m1.clone() };
        assert!(admin.require_self_or_admin(&m2).is_ok());
        assert!(me.require_self_or_admin(&m1).is_ok());
        assert!(me.require_self_or_admin(&m2).is_err());
        assert!(pos.require_self_or_admin(&m1).is_err());
        assert!(pos.require_self_pos_or_admin(&m1).is_ok());
        assert!(pos.require_store(&s1).is_ok());
        assert!(pos.require_store(&s2).is_err());
        assert!(me.require_store(&s1).is_err());
        assert!(admin.require_store(&s2).is_ok());
        assert!(me.require_admin().is_err());
    }
}
