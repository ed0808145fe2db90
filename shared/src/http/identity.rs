//! The caller, as API Gateway's JWT authorizer describes them in the v2 request context
//! (`requestContext.authorizer.jwt.claims`). Functions never verify signatures: the authorizer
//! (or `loyalty-local`, playing its part) already did.

use super::{Problem, RequestId};
use crate::domain::audit::{Actor, OperatorRole};
use crate::domain::{MemberId, StoreId};
use axum::extract::FromRequestParts;
use http::request::Parts;
use lambda_http::request::RequestContext;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// An operator of the program: admin, support or analyst (API.md "Operator roles").
    Operator {
        sub: String,
        role: OperatorRole,
    },
    Pos {
        sub: String,
        store: StoreId,
    },
    Member {
        id: MemberId,
    },
}

pub const ADMIN_SCOPE: &str = "loyalty/admin";
pub const SUPPORT_SCOPE: &str = "loyalty/support";
pub const ANALYST_SCOPE: &str = "loyalty/analyst";
pub const POS_SCOPE: &str = crate::domain::audit::POS_SCOPE;

/// What a route needs of its caller. The one table of who may do what is [`Caller::require`].
#[derive(Clone, Copy, Debug)]
pub enum Access<'a> {
    /// A member's data: the member, and every operator.
    MemberData(&'a MemberId),
    /// A member's profile, points and tier as the till shows them: the member, a POS, every
    /// operator.
    MemberAtTill(&'a MemberId),
    /// Caring for a member (profile edits, cancelling a redemption): the member, admin, support.
    MemberCare(&'a MemberId),
    /// What only the member (or an administrator) may do: redeem, erase.
    MemberOwn(&'a MemberId),
    /// Enrolment: a member (themselves), a POS, an administrator.
    Enrol,
    /// Point adjustments: admin, and support within the program's per-request limit.
    Adjust,
    /// Analytics, segments, campaigns and their results, the event feed: admin, analyst.
    Insight,
    /// Operators' labels on members (tags): admin, support.
    Tagging,
    /// Operator-only views of members: finding one by phone or by a receipt, their campaign
    /// assignments (a member never learns they are in a holdout): every operator.
    Lookup,
    /// Catalog and campaign changes, jobs, the audit trail: admin.
    Admin,
    /// A POS acting for this store, or an administrator.
    Store(&'a StoreId),
}

impl Caller {
    /// Builds the caller from JWT claims (`sub`, `scope` separated by spaces, `store_id`) and the
    /// authorizer's `scopes` list. A token with several operator scopes is the widest of them.
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
        for (scope, role) in [
            (ADMIN_SCOPE, OperatorRole::Admin),
            (SUPPORT_SCOPE, OperatorRole::Support),
            (ANALYST_SCOPE, OperatorRole::Analyst),
        ] {
            if has(scope) {
                return Ok(Caller::Operator {
                    sub: sub.clone(),
                    role,
                });
            }
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
            Caller::Operator { sub, role } => format!("{}:{sub}", role.as_str()),
            Caller::Pos { sub, store } => format!("pos:{store}:{sub}"),
            Caller::Member { id } => format!("member:{id}"),
        }
    }

    pub fn role(&self) -> Option<OperatorRole> {
        match self {
            Caller::Operator { role, .. } => Some(*role),
            _ => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role() == Some(OperatorRole::Admin)
    }

    /// The operator behind a write, for its audit record; `None` when a member or a POS acts.
    pub fn actor(&self, request: &RequestId) -> Option<Actor> {
        match self {
            Caller::Operator { sub, role } => Some(Actor {
                sub: sub.clone(),
                role: *role,
                request_id: request.0.clone(),
            }),
            _ => None,
        }
    }

    /// The operator behind a write only operators make.
    pub fn operator(&self, request: &RequestId) -> Result<Actor, Problem> {
        self.actor(request)
            .ok_or_else(|| Problem::forbidden("this needs an operator"))
    }

    /// The one table of who may do what. A refusal says what the route needs, nothing of the
    /// data behind it.
    pub fn require(&self, access: Access) -> Result<(), Problem> {
        use OperatorRole::{Admin, Analyst, Support};
        let role = self.role();
        let me = |id: &MemberId| matches!(self, Caller::Member { id: mine } if mine == id);
        let pos = matches!(self, Caller::Pos { .. });
        let (allowed, needs) = match access {
            Access::MemberData(id) => (me(id) || role.is_some(), "the member or an operator"),
            Access::MemberAtTill(id) => (
                me(id) || pos || role.is_some(),
                "the member, a POS or an operator",
            ),
            Access::MemberCare(id) => (
                me(id) || matches!(role, Some(Admin | Support)),
                "the member, an administrator or support",
            ),
            Access::MemberOwn(id) => (
                me(id) || role == Some(Admin),
                "the member or an administrator",
            ),
            Access::Enrol => (
                matches!(self, Caller::Member { .. } | Caller::Pos { .. }) || role == Some(Admin),
                "a member, a POS or an administrator",
            ),
            Access::Adjust => (
                matches!(role, Some(Admin | Support)),
                "an administrator or support",
            ),
            Access::Tagging => (
                matches!(role, Some(Admin | Support)),
                "an administrator or support",
            ),
            Access::Insight => (
                matches!(role, Some(Admin | Analyst)),
                "an administrator or an analyst",
            ),
            Access::Lookup => (role.is_some(), "an operator"),
            Access::Admin => (role == Some(Admin), "an administrator"),
            Access::Store(store) => match self {
                Caller::Pos { store: mine, .. } => {
                    (mine == store, "a POS token of this store (its own only)")
                }
                _ => (role == Some(Admin), "a POS or administrator token"),
            },
        };
        if allowed {
            Ok(())
        } else {
            Err(Problem::forbidden(format!("this needs {needs}")))
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
            Ok(Caller::Operator {
                role: OperatorRole::Admin,
                ..
            })
        ));
        for (scope, role) in [
            ("openid loyalty/support", OperatorRole::Support),
            ("loyalty/analyst", OperatorRole::Analyst),
            ("loyalty/analyst loyalty/support", OperatorRole::Support),
            ("loyalty/analyst loyalty/admin", OperatorRole::Admin),
        ] {
            let c = claims(&[("sub", "ops"), ("scope", scope)]);
            assert_eq!(
                Caller::from_claims(&c, None).unwrap().role(),
                Some(role),
                "{scope}"
            );
        }
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
            Ok(Caller::Operator {
                role: OperatorRole::Admin,
                ..
            })
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
            let is_admin = Caller::from_claims(&c, None).is_ok_and(|c| c.is_admin());
            assert_eq!(is_admin, admin, "{scope:?}");
        }
    }

    #[test]
    fn access_rules_table() {
        let m1 = MemberId::parse("m1").unwrap();
        let m2 = MemberId::parse("m2").unwrap();
        let s1 = StoreId::parse("s1").unwrap();
        let s2 = StoreId::parse("s2").unwrap();
        let op = |role| Caller::Operator {
            sub: "o".into(),
            role,
        };
        let callers = [
            Caller::Member { id: m1.clone() },
            Caller::Pos {
                sub: "p".into(),
                store: s1.clone(),
            },
            op(OperatorRole::Admin),
            op(OperatorRole::Support),
            op(OperatorRole::Analyst),
        ];
        // me (m1), POS of s1, admin, support, analyst
        let table: [(Access, [bool; 5]); 14] = [
            (Access::Enrol, [true, true, true, false, false]),
            (Access::MemberData(&m1), [true, false, true, true, true]),
            (Access::MemberData(&m2), [false, false, true, true, true]),
            (Access::MemberAtTill(&m1), [true, true, true, true, true]),
            (Access::MemberAtTill(&m2), [false, true, true, true, true]),
            (Access::MemberCare(&m1), [true, false, true, true, false]),
            (Access::MemberCare(&m2), [false, false, true, true, false]),
            (Access::MemberOwn(&m1), [true, false, true, false, false]),
            (Access::Adjust, [false, false, true, true, false]),
            (Access::Insight, [false, false, true, false, true]),
            (Access::Lookup, [false, false, true, true, true]),
            (Access::Admin, [false, false, true, false, false]),
            (Access::Store(&s1), [false, true, true, false, false]),
            (Access::Store(&s2), [false, false, true, false, false]),
        ];
        for (access, expected) in table {
            for (caller, allowed) in callers.iter().zip(expected) {
                assert_eq!(
                    caller.require(access).is_ok(),
                    allowed,
                    "{caller:?} {access:?}"
                );
            }
        }
    }
}
