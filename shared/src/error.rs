//! The one error enum of the use cases and the table layer below them. Every refusal a client can
//! cause is a variant here; the HTTP layer maps each to its problem type in one place
//! (`http::problem`). It lives below `table` (which returns it) and above `domain` and `store`
//! (whose errors it carries); `service` re-exports it.

use crate::domain::{Currency, Invalid, Overflow, Tier};
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the offending field (`amount.value`), or `body`.
    pub field: String,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request parsed but means something the rules refuse (422).
    #[error("the request is not valid")]
    Validation(Vec<FieldError>),
    /// The request's shape is wrong in a way its types could not say (400).
    #[error("the request is malformed")]
    Malformed(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("a member with this id already exists")]
    MemberExists,
    #[error("this member was erased")]
    MemberErased,
    #[error("this phone number belongs to another member")]
    PhoneTaken,
    #[error("{}", refusal_text(.0))]
    ReferralRefused(crate::domain::referral::Refusal),
    #[error("this referral code belongs to another member")]
    ReferralCodeTaken,
    #[error("the referral is {0}, not held for review")]
    ReferralNotHeld(&'static str),
    #[error("the birthday is already set; only an administrator can change it")]
    BirthdayLocked,
    #[error("balance {balance} does not cover the reward's {cost} points")]
    InsufficientPoints { balance: i64, cost: i64 },
    #[error("the reward is out of stock")]
    OutOfStock,
    #[error("the member already holds the maximum of {limit} of this reward")]
    LimitReached { limit: u32 },
    #[error(
        "a support operator may adjust at most {limit} points in one request; ask an administrator"
    )]
    AdjustmentOverLimit { limit: u32 },
    #[error("the reward needs tier {required}; the member holds {held}")]
    TierTooLow { required: Tier, held: Tier },
    #[error("the reward is not active")]
    RewardInactive,
    #[error("the voucher has already been used")]
    VoucherUsed,
    #[error("the voucher was cancelled")]
    VoucherCancelled,
    #[error("the voucher expired")]
    VoucherExpired,
    #[error("the redemption is {} and can no longer be cancelled", status.as_str())]
    RedemptionNotCancellable {
        status: crate::domain::voucher::RedemptionStatus,
    },
    #[error(
        "refunds would total {would_total} minor units, more than the purchase's {purchase_amount}"
    )]
    RefundExceedsPurchase {
        purchase_amount: i64,
        would_total: i64,
    },
    #[error("the program runs in {expected}; the amount is in {got}")]
    CurrencyMismatch { expected: Currency, got: Currency },
    #[error("{0}")]
    StalePurchase(String),
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("this receipt (or refund id) was already posted with different content")]
    ReceiptConflict,
    #[error("the campaign has been launched; a launched campaign cannot change or launch again")]
    CampaignLaunched,
    #[error("the campaign is not running (it is a draft, or its launch has not finished)")]
    CampaignNotRunning,
    #[error("{max} campaigns are running already; end one first")]
    TooManyCampaigns { max: usize },
    #[error("{max} custom segments are defined already; delete one first")]
    TooManySegments { max: usize },
    #[error("too many unknown referral codes from this caller; try again in {retry_after} seconds")]
    TooManyUnknownCodes { retry_after: u32 },
    #[error("too many concurrent changes to the same member; retry shortly")]
    Contention,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record (or a stored answer) that does not read or write as its type: a bug or a
    /// hand edit, never the client's doing (500).
    #[error("stored data is not readable: {what}")]
    Corrupt {
        what: String,
        #[source]
        cause: Option<serde_json::Error>,
    },
}

impl ServiceError {
    pub fn corrupt(what: impl Into<String>) -> Self {
        ServiceError::Corrupt {
            what: what.into(),
            cause: None,
        }
    }
    /// A record that did not (de)serialise, with the serde error as its source.
    pub fn unreadable(what: impl Into<String>, cause: serde_json::Error) -> Self {
        ServiceError::Corrupt {
            what: what.into(),
            cause: Some(cause),
        }
    }
    pub fn field(field: &str, detail: impl Into<String>) -> Self {
        ServiceError::Validation(vec![FieldError {
            field: field.into(),
            detail: detail.into(),
        }])
    }
    pub fn malformed(field: &str, detail: impl Into<String>) -> Self {
        ServiceError::Malformed(vec![FieldError {
            field: field.into(),
            detail: detail.into(),
        }])
    }
    pub fn invalid(field: &str, e: Invalid) -> Self {
        Self::field(field, e.0)
    }
    /// An instant a caller sent, inside the years the API accepts (`domain::bounds`); else
    /// 422 naming the field.
    pub fn bounded_instant(
        field: &str,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Result<chrono::DateTime<chrono::Utc>, Self> {
        if crate::domain::bounds::instant_in_range(t) {
            Ok(t)
        } else {
            Err(Self::field(
                field,
                crate::domain::bounds::date_out_of_range(),
            ))
        }
    }
    /// A date a caller sent, inside the years the API accepts; else 422 naming the field.
    pub fn bounded_date(field: &str, d: chrono::NaiveDate) -> Result<chrono::NaiveDate, Self> {
        if crate::domain::bounds::date_in_range(d) {
            Ok(d)
        } else {
            Err(Self::field(
                field,
                crate::domain::bounds::date_out_of_range(),
            ))
        }
    }
    /// Lost a race (a version or absence condition) or was throttled: read again and redo.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ServiceError::Store(e) if e.is_retryable())
    }
}

impl From<Overflow> for ServiceError {
    fn from(_: Overflow) -> Self {
        ServiceError::field(
            "body",
            "the numbers in this request would overflow a balance",
        )
    }
}

fn refusal_text(r: &crate::domain::referral::Refusal) -> String {
    use crate::domain::referral::Refusal as R;
    match r {
        R::Disabled => "the program has no referrals".into(),
        R::UnknownCode => "no member has this referral code".into(),
        R::WindowClosed => {
            "a code can no longer be applied: the window after enrolment is over".into()
        }
        R::AlreadyReferred => "this member already applied a referral code".into(),
        R::OwnCode => "a member cannot apply their own referral code".into(),
        R::CapReached => {
            "this code's referrer has reached the most referrals the program rewards".into()
        }
        R::AlreadyPurchased => {
            "only the first purchase qualifies, and this member has already made it".into()
        }
        R::SelfReferral(rule) => format!(
            "the referrer and the referee look like one person ({})",
            serde_json::to_value(rule)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
    }
}
