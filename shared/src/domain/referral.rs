//! Referrals (DESIGN.md "Referrals"), the pure part: the code alphabet, the rules, and the
//! decisions — whether a code may be applied, what a referee's purchase does to a referral
//! (qualify and reward both sides, hold it for review, reject it, or nothing), and what a refund
//! takes back, with the referrer's counts and milestone bonuses recounted. Callers read the
//! referral, the referrer's counts and both members and pass plain facts in; nothing here reads
//! the clock or the store.

use super::Invalid;
use super::Points;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use utoipa::ToSchema;

/// No 0/O or 1/I: a code read aloud at a till or copied from a poster is never ambiguous.
pub const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Generated codes: 32⁸ ≈ 10¹² codes, so a collision (refused by the code's absence condition,
/// then drawn again) is rare even at tens of millions of members.
pub const GENERATED_CODE_LEN: usize = 8;

/// A referral code: 4 to 16 characters of [`CODE_ALPHABET`], upper case. Lower case is accepted
/// and upper-cased; an ambiguous character (0, O, 1, I) is refused with the reason.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReferralCode(String);
super::string_schema!(
    ReferralCode,
    "K7QM4ZPA",
    "A referral code: 4 to 16 of 23456789ABCDEFGHJKLMNPQRSTUVWXYZ (case-insensitive)"
);

impl ReferralCode {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let up = s.trim().to_ascii_uppercase();
        if !(4..=16).contains(&up.len()) {
            return Err(Invalid::new("a referral code has 4 to 16 characters"));
        }
        if let Some(c) = up
            .chars()
            .find(|c| !CODE_ALPHABET.contains(&(*c as u8)) || !c.is_ascii())
        {
            return Err(Invalid::new(format!(
                "a referral code uses 2-9 and A-Z without O and I; '{c}' is not one of them"
            )));
        }
        Ok(ReferralCode(up))
    }

    /// A code from `GENERATED_CODE_LEN` draws of a random source (each draw an index < 32).
    pub fn from_draws(draws: impl IntoIterator<Item = u8>) -> Self {
        ReferralCode(
            draws
                .into_iter()
                .take(GENERATED_CODE_LEN)
                .map(|d| CODE_ALPHABET[usize::from(d) % CODE_ALPHABET.len()] as char)
                .collect(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for ReferralCode {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        ReferralCode::parse(&s)
    }
}
impl From<ReferralCode> for String {
    fn from(c: ReferralCode) -> String {
        c.0
    }
}
impl fmt::Display for ReferralCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for ReferralCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReferralCode({})", self.0)
    }
}

/// A referee's mark on their member item: while a purchase may still qualify the referral, the
/// last day one may and who referred them (stored `YYMMDD referrer`), so the qualifying purchase
/// reads the referrer in its one more round trip; `-` once none can (the member stays counted as
/// referred). A purchase of a member never referred finds no mark and reads nothing more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ReferralMark {
    Open {
        deadline: NaiveDate,
        referrer: super::MemberId,
    },
    Closed,
}

impl TryFrom<String> for ReferralMark {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "-" {
            return Ok(ReferralMark::Closed);
        }
        let (day, referrer) = s
            .split_once(' ')
            .ok_or_else(|| format!("referral mark {s:?}: no referrer"))?;
        Ok(ReferralMark::Open {
            deadline: NaiveDate::parse_from_str(&format!("20{day}"), "%Y%m%d")
                .map_err(|e| format!("referral mark {s:?}: {e}"))?,
            referrer: super::MemberId::parse(referrer).map_err(|e| e.0)?,
        })
    }
}
impl From<ReferralMark> for String {
    fn from(m: ReferralMark) -> String {
        match m {
            ReferralMark::Open { deadline, referrer } => {
                format!("{} {referrer}", deadline.format("%y%m%d"))
            }
            ReferralMark::Closed => "-".into(),
        }
    }
}

/// What a fraud rule does to a referral it trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFraud {
    /// Held for an administrator to approve or reject.
    Review,
    /// Rejected at once: nobody is paid.
    Reject,
}

/// A bonus to the referrer on every `every`-th referral they were paid for and that stands
/// (a capped referral pays the referrer nothing, milestones included, and does not count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Milestone {
    pub every: u32,
    pub points: Points,
}

/// The program's `referral` rules (DESIGN.md "Program rules").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralRules {
    pub enabled: bool,
    /// Days after enrolment a code may still be applied (0: only at enrolment).
    pub apply_within_days: u32,
    /// Days after applying in which a purchase qualifies (0: only the first purchase).
    pub qualify_within_days: u32,
    /// The least a qualifying purchase spends (minor units), net of refunds in the window.
    pub min_spend: i64,
    pub referrer_points: Points,
    pub referee_points: Points,
    pub milestone: Option<Milestone>,
    /// Referrals a referrer is paid for per calendar month, and ever (beyond: the referee is
    /// still rewarded, the referrer is not: neither the reward nor a milestone).
    pub monthly_cap: u32,
    pub total_cap: u32,
    pub on_fraud: OnFraud,
    /// More than this many referees of one referrer qualifying within an hour: held.
    pub velocity_per_hour: u32,
    /// Unknown codes one caller may try an hour (`guesses::allow`); past it, 429.
    pub unknown_codes_per_hour: u32,
}

/// Why a referral was held or rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FraudRule {
    /// Referrer and referee have the same phone number.
    SamePhone,
    /// The same e-mail address, once normalised (case, `+tags`, Gmail's dots).
    SameEmail,
    /// The referee paid with a card or wallet the referrer has paid with.
    SamePayment,
    /// Too many of the referrer's referees qualified within the hour.
    Velocity,
    /// The referee's phone or e-mail was rewarded as a referee before (perhaps as a member
    /// since erased and enrolled again).
    RepeatReferee,
    /// An administrator rejected it on review.
    Reviewer,
}

/// Where a referral stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReferralStatus {
    /// Applied; no qualifying purchase yet.
    Applied,
    /// A qualifying purchase tripped a fraud rule: waiting for review.
    Held,
    /// Qualified and paid (the referrer perhaps not, over a cap).
    Rewarded,
    /// A refund in the return window took the qualifying purchase below the minimum spend.
    Reversed,
    /// A fraud rule or a reviewer refused it: nobody was paid.
    Rejected,
    /// The qualifying window closed without a qualifying purchase.
    Expired,
}

impl ReferralStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReferralStatus::Applied => "applied",
            ReferralStatus::Held => "held",
            ReferralStatus::Rewarded => "rewarded",
            ReferralStatus::Reversed => "reversed",
            ReferralStatus::Rejected => "rejected",
            ReferralStatus::Expired => "expired",
        }
    }
}

/// Why a code cannot be applied: each is its own problem type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Disabled,
    UnknownCode,
    WindowClosed,
    AlreadyReferred,
    OwnCode,
    /// The referrer has been paid for as many referrals as the program allows.
    CapReached,
    /// The first purchase was already made, and only the first qualifies.
    AlreadyPurchased,
    /// Under `on_fraud: reject`, the same phone or e-mail as the referrer.
    SelfReferral(FraudRule),
}

/// An e-mail address as compared: lower case, without a `+tag`, and for Gmail without dots
/// (one mailbox, many spellings).
pub fn normalised_email(email: &str) -> String {
    let lower = email.trim().to_lowercase();
    let Some((local, domain)) = lower.rsplit_once('@') else {
        return lower;
    };
    let local = local.split('+').next().unwrap_or(local);
    let (local, domain) = match domain {
        "gmail.com" | "googlemail.com" => (local.replace('.', ""), "gmail.com"),
        d => (local.to_owned(), d),
    };
    format!("{local}@{domain}")
}

/// The hash a contact or payment fingerprint is compared and stored as (hex SHA-256 of the
/// normalised value, prefixed by its kind so a phone never equals a card).
pub fn fingerprint(kind: &str, normalised: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update(b":");
    h.update(normalised.as_bytes());
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A contact's keyed hash (HMAC-SHA256 under the program's pseudonym key, 16 bytes hex): what
/// is kept of a rewarded referee's phone and e-mail, and of a retired code. Without the key it
/// cannot be matched against a list of phone numbers, as a plain hash of a phone could.
pub fn keyed(key: &[u8], kind: &str, normalised: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(normalised.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The keyed hashes a referee is remembered by once rewarded: their phone and their e-mail.
pub fn referee_marks(key: &[u8], phone: Option<&str>, email: Option<&str>) -> Vec<String> {
    phone
        .map(|p| keyed(key, "phone", p))
        .into_iter()
        .chain(email.map(|e| keyed(key, "email", &normalised_email(e))))
        .collect()
}

/// The contact details compared between referrer and referee, as hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    pub phone: Option<String>,
    pub email: Option<String>,
}

impl Contact {
    pub fn of(phone: Option<&str>, email: Option<&str>) -> Contact {
        Contact {
            phone: phone.map(|p| fingerprint("phone", p)),
            email: email.map(|e| fingerprint("email", &normalised_email(e))),
        }
    }
}

/// The self-referral rule a pair of contacts trips, if any.
pub fn same_person(referee: &Contact, referrer: &Contact) -> Option<FraudRule> {
    let same = |a: &Option<String>, b: &Option<String>| a.is_some() && a == b;
    if same(&referee.phone, &referrer.phone) {
        Some(FraudRule::SamePhone)
    } else if same(&referee.email, &referrer.email) {
        Some(FraudRule::SameEmail)
    } else {
        None
    }
}

/// Facts for applying a code.
pub struct Application<'a> {
    pub rules: &'a ReferralRules,
    /// The referee's enrolment day and today (program dates).
    pub enrolled_on: NaiveDate,
    pub today: NaiveDate,
    /// Whether this is the enrolment itself.
    pub at_enrolment: bool,
    pub already_referred: bool,
    pub has_purchased: bool,
    pub own_code: bool,
    pub referrer_paid_total: u32,
    pub contacts: Option<FraudRule>,
}

/// Whether a code may be applied; `Ok` names the last day a purchase qualifies and whether only
/// the first purchase does, and the fraud rule the contacts tripped if it is to be reviewed.
pub fn may_apply(a: &Application) -> Result<(NaiveDate, bool, Option<FraudRule>), Refusal> {
    let r = a.rules;
    if !r.enabled {
        return Err(Refusal::Disabled);
    }
    if a.own_code {
        return Err(Refusal::OwnCode);
    }
    if a.already_referred {
        return Err(Refusal::AlreadyReferred);
    }
    let last_day = a.enrolled_on + Duration::days(i64::from(r.apply_within_days));
    if !a.at_enrolment && (r.apply_within_days == 0 || a.today > last_day) {
        return Err(Refusal::WindowClosed);
    }
    let first_only = r.qualify_within_days == 0;
    if first_only && a.has_purchased {
        return Err(Refusal::AlreadyPurchased);
    }
    if a.referrer_paid_total >= r.total_cap {
        return Err(Refusal::CapReached);
    }
    if let Some(rule) = a.contacts
        && r.on_fraud == OnFraud::Reject
    {
        return Err(Refusal::SelfReferral(rule));
    }
    Ok((
        a.today + Duration::days(i64::from(r.qualify_within_days)),
        first_only,
        a.contacts,
    ))
}

/// A referee's referral: who referred them, where it stands, and what it paid (so a refund can
/// take exactly that back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    pub referee: super::MemberId,
    pub referrer: super::MemberId,
    pub code: ReferralCode,
    pub applied_at: DateTime<Utc>,
    /// The last day a purchase qualifies.
    pub deadline: NaiveDate,
    pub first_only: bool,
    pub status: ReferralStatus,
    /// The rule that held or rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<FraudRule>,
    /// The qualifying purchase (also on held referrals), its day and its amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase: Option<super::receipt::PurchaseRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bought_on: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub referee_points: Points,
    #[serde(default)]
    pub referrer_points: Points,
    /// A milestone bonus this referral crossed (to the referrer).
    #[serde(default)]
    pub milestone_points: Points,
    /// The milestone bonuses this referral's reversal took back (the recount's, whichever
    /// referral had crossed them), so the funnel nets a referrer's points exactly.
    #[serde(default, skip_serializing_if = "Points::is_zero")]
    pub milestones_reversed: Points,
    #[serde(default)]
    pub capped: bool,
    /// The month its payout counted in (for the monthly cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_month: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referee_origin: Option<super::lots::Origin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_origin: Option<super::lots::Origin>,
    /// The administrator who approved or rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl Referral {
    /// `code` of `referrer` applied by `referee` at `now`: it qualifies until `deadline` (on the
    /// first purchase only when `first_only`); nothing is decided or paid yet.
    pub fn applied(
        referee: &super::MemberId,
        referrer: &super::MemberId,
        code: &ReferralCode,
        (now, deadline, first_only): (DateTime<Utc>, NaiveDate, bool),
    ) -> Referral {
        Referral {
            referee: referee.clone(),
            referrer: referrer.clone(),
            code: code.clone(),
            applied_at: now,
            deadline,
            first_only,
            status: ReferralStatus::Applied,
            rule: None,
            purchase: None,
            bought_on: None,
            amount: None,
            qualified_at: None,
            referee_points: Points::ZERO,
            referrer_points: Points::ZERO,
            milestone_points: Points::ZERO,
            milestones_reversed: Points::ZERO,
            capped: false,
            paid_month: None,
            referee_origin: None,
            referrer_origin: None,
            reviewed_by: None,
            updated_at: now,
        }
    }

    /// A fraud rule held or rejected the qualifying purchase: the referral remembers it and the
    /// referrer's `counts` count it.
    pub fn judge(&mut self, rule: FraudRule, held: bool, counts: &mut Counts) {
        self.rule = Some(rule);
        if held {
            self.status = ReferralStatus::Held;
            counts.held += 1;
        } else {
            self.status = ReferralStatus::Rejected;
            counts.rejected += 1;
        }
    }

    /// Paid as `p` decided on `today`: what each side got, and the month a capped payout does
    /// not count in.
    pub fn paid(&mut self, p: &Payout, now: DateTime<Utc>, today: NaiveDate) {
        self.status = ReferralStatus::Rewarded;
        self.qualified_at = Some(now);
        self.capped = p.capped;
        self.paid_month = (!p.capped).then(|| month_of(today));
        self.referee_points = p.referee;
        self.referrer_points = p.referrer;
        self.milestone_points = p.milestone.unwrap_or(Points::ZERO);
    }

    /// A refund took a held referral's purchase below the minimum: rejected under the rule that
    /// held it, moved in the referrer's `counts` (when the referrer is still there) from held to
    /// rejected.
    pub fn reject_on_refund(&mut self, counts: Option<&mut Counts>) {
        self.status = ReferralStatus::Rejected;
        if let Some(counts) = counts {
            counts.held = counts.held.saturating_sub(1);
            counts.rejected += 1;
        }
    }

    /// As of `today`: an `applied` referral past its last day is expired, whether or not a
    /// purchase has noticed yet.
    pub fn status_on(&self, today: NaiveDate) -> ReferralStatus {
        match self.status {
            ReferralStatus::Applied if today > self.deadline => ReferralStatus::Expired,
            s => s,
        }
    }
}

/// A milestone bonus paid to the referrer, kept so a recount can take back the right one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MilestonePaid {
    /// The count of standing paid referrals that paid it.
    pub at: u32,
    pub points: Points,
    /// Its lot (pending until the day, or available).
    pub origin: super::lots::Origin,
}

/// A referrer's counts: what their code did. One per referrer, versioned, so qualifications of
/// many referees at once never pay past a cap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub applied: u32,
    pub held: u32,
    /// Qualified and paid (the referee at least), standing or since reversed.
    pub rewarded: u32,
    pub reversed: u32,
    pub rejected: u32,
    /// Referrals the referrer was paid for and that still stand (the total cap counts these).
    pub paid: u32,
    /// The calendar month (`YYYY-MM`) of `paid_in_month`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<String>,
    #[serde(default)]
    pub paid_in_month: u32,
    /// When the last referees qualified (at most `velocity_per_hour + 1` kept).
    #[serde(default)]
    pub recent: Vec<DateTime<Utc>>,
    /// Points paid to the referrer for referrals and milestones, net of reversals.
    pub points: i64,
    #[serde(default)]
    pub milestones: Vec<MilestonePaid>,
}

impl Counts {
    /// Referrals that qualified and still stand (capped ones included).
    pub fn standing(&self) -> u32 {
        self.rewarded.saturating_sub(self.reversed)
    }

    fn month_key(today: NaiveDate) -> String {
        format!("{:04}-{:02}", today.year(), today.month())
    }

    pub fn paid_this_month(&self, today: NaiveDate) -> u32 {
        match &self.month {
            Some(m) if *m == Counts::month_key(today) => self.paid_in_month,
            _ => 0,
        }
    }
}

/// Facts about a referee's purchase for the qualification decision.
pub struct PurchaseFacts {
    pub amount: i64,
    pub today: NaiveDate,
    pub now: DateTime<Utc>,
    /// Whether it is the referee's first purchase.
    pub first: bool,
    /// The self-referral rule the contacts or the payment trip, if any.
    pub same_person: Option<FraudRule>,
}

/// What a referee's purchase does to an `applied` referral.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Qualification {
    /// Not a qualifying purchase, and later ones may still be.
    NotYet,
    /// The window is over (past its last day, or the first purchase did not qualify).
    Expired,
    Held(FraudRule),
    Rejected(FraudRule),
    Rewarded(Payout),
}

/// What a qualified referral pays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payout {
    pub referee: Points,
    /// Zero when a cap is reached.
    pub referrer: Points,
    pub capped: bool,
    /// A milestone bonus this referral crosses (to the referrer).
    pub milestone: Option<Points>,
}

/// The decision on a referee's purchase while the referral is `applied`.
pub fn qualify(
    rules: &ReferralRules,
    deadline: NaiveDate,
    first_only: bool,
    counts: &Counts,
    p: &PurchaseFacts,
) -> Qualification {
    if p.today > deadline || (first_only && !p.first) {
        return Qualification::Expired;
    }
    if p.amount < rules.min_spend {
        return if first_only {
            Qualification::Expired
        } else {
            Qualification::NotYet
        };
    }
    if let Some(rule) = p.same_person {
        return match rules.on_fraud {
            OnFraud::Review => Qualification::Held(rule),
            OnFraud::Reject => Qualification::Rejected(rule),
        };
    }
    let hour_ago = p.now - Duration::hours(1);
    let in_hour = counts.recent.iter().filter(|t| **t > hour_ago).count();
    if in_hour >= rules.velocity_per_hour as usize {
        return Qualification::Held(FraudRule::Velocity);
    }
    Qualification::Rewarded(payout(rules, counts, p.today))
}

/// What a referral pays when it qualifies (or is approved) today.
pub fn payout(rules: &ReferralRules, counts: &Counts, today: NaiveDate) -> Payout {
    let capped =
        counts.paid >= rules.total_cap || counts.paid_this_month(today) >= rules.monthly_cap;
    // A cap caps everything the referrer is paid: past it, no milestone either, and the
    // capped referral does not count towards the next one.
    let milestone = rules.milestone.filter(|_| !capped).and_then(|m| {
        let after = counts.paid + 1;
        (after.is_multiple_of(m.every) && after / m.every > counts.milestones.len() as u32)
            .then_some(m.points)
    });
    Payout {
        referee: rules.referee_points,
        referrer: if capped {
            Points::ZERO
        } else {
            rules.referrer_points
        },
        capped,
        milestone,
    }
}

impl Counts {
    /// The counts after a referral is paid today (`payout`), with its milestone's lot.
    pub fn paid_out(
        &mut self,
        p: &Payout,
        now: DateTime<Utc>,
        today: NaiveDate,
        keep_recent: usize,
        milestone_origin: Option<super::lots::Origin>,
    ) {
        self.rewarded += 1;
        if !p.capped {
            self.paid += 1;
            self.paid_in_month = self.paid_this_month(today) + 1;
            self.month = Some(Counts::month_key(today));
        }
        self.points += p.referrer.0;
        if let (Some(points), Some(origin)) = (p.milestone, milestone_origin) {
            self.points += points.0;
            self.milestones.push(MilestonePaid {
                at: self.paid,
                points,
                origin,
            });
        }
        self.recent.push(now);
        let excess = self.recent.len().saturating_sub(keep_recent.max(1));
        self.recent.drain(..excess);
    }

    /// The counts after a paid referral is reversed (on `reversed_on`, the referral having paid
    /// the referrer `referrer` and counted in the month `paid_month` if not capped): returns the
    /// milestone bonuses the recount takes back, latest first.
    pub fn reversed_out(
        &mut self,
        referrer: Points,
        capped: bool,
        paid_month: Option<&str>,
    ) -> Vec<MilestonePaid> {
        self.reversed += 1;
        if !capped {
            self.paid = self.paid.saturating_sub(1);
            if paid_month.is_some() && self.month.as_deref() == paid_month {
                self.paid_in_month = self.paid_in_month.saturating_sub(1);
            }
        }
        self.points -= referrer.0;
        let paid = self.paid;
        let mut back = Vec::new();
        while self.milestones.last().is_some_and(|m| m.at > paid) {
            let m = self.milestones.pop().expect("checked");
            self.points -= m.points.0;
            back.push(m);
        }
        back
    }
}

/// Whether a refund takes a qualified referral back: it comes within the return window (on or
/// before the purchase day + `pending_days`) and leaves the purchase below the minimum spend.
pub fn refund_reverses(
    rules: &ReferralRules,
    amount: i64,
    refunded_total: i64,
    bought_on: NaiveDate,
    today: NaiveDate,
    pending_days: u32,
) -> bool {
    today <= bought_on + Duration::days(i64::from(pending_days))
        && amount - refunded_total < rules.min_spend
}

/// What a refund does to a referral.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundVerdict {
    /// Not its qualifying purchase, not paid or held, or the refund leaves it qualifying.
    Untouched,
    /// A held referral whose purchase no longer qualifies: rejected, nothing was paid.
    Reject,
    /// A paid referral: both rewards (and any milestone it made) come back.
    Reverse,
}

/// A refund as a referral's clawback sees it.
pub struct RefundSeen<'a> {
    pub of: &'a super::receipt::PurchaseRef,
    /// The purchase's amount and everything refunded of it so far, this refund included.
    pub amount: i64,
    pub refunded_total: i64,
    pub today: NaiveDate,
}

impl Referral {
    /// The verdict of `refund` on this referral ([`refund_reverses`] on its own purchase).
    pub fn on_refund(
        &self,
        refund: &RefundSeen<'_>,
        rules: &ReferralRules,
        pending_days: u32,
    ) -> RefundVerdict {
        let ours = self.purchase.as_ref() == Some(refund.of);
        let reverses = refund_reverses(
            rules,
            refund.amount,
            refund.refunded_total,
            self.bought_on.unwrap_or(refund.today),
            refund.today,
            pending_days,
        );
        match self.status {
            _ if !ours || !reverses => RefundVerdict::Untouched,
            ReferralStatus::Held => RefundVerdict::Reject,
            ReferralStatus::Rewarded => RefundVerdict::Reverse,
            _ => RefundVerdict::Untouched,
        }
    }
}

/// The month key a payout on `today` counts in.
pub fn month_of(today: NaiveDate) -> String {
    Counts::month_key(today)
}

/// Referrals and dates for the tests here and in `referral_funnel`.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    pub(crate) fn referral(
        referee: &str,
        status: ReferralStatus,
        points: (i64, i64, i64, i64),
    ) -> Referral {
        let at = day("2027-01-05").and_hms_opt(9, 0, 0).unwrap().and_utc();
        Referral {
            referee: super::super::MemberId::parse(referee).unwrap(),
            referrer: super::super::MemberId::parse("ada").unwrap(),
            code: ReferralCode::parse("ADAPALS").unwrap(),
            applied_at: at,
            deadline: day("2027-02-04"),
            first_only: false,
            status,
            rule: None,
            purchase: None,
            bought_on: None,
            amount: None,
            qualified_at: Some(at),
            referee_points: Points(points.0),
            referrer_points: Points(points.1),
            milestone_points: Points(points.2),
            milestones_reversed: Points(points.3),
            capped: false,
            paid_month: None,
            referee_origin: None,
            referrer_origin: None,
            reviewed_by: None,
            updated_at: at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{day, referral};
    use super::*;

    pub(crate) fn rules() -> ReferralRules {
        ReferralRules {
            enabled: true,
            apply_within_days: 30,
            qualify_within_days: 30,
            min_spend: 2000,
            referrer_points: Points(500),
            referee_points: Points(200),
            milestone: Some(Milestone {
                every: 3,
                points: Points(1000),
            }),
            monthly_cap: 2,
            total_cap: 4,
            on_fraud: OnFraud::Review,
            velocity_per_hour: 3,
            unknown_codes_per_hour: 20,
        }
    }

    #[test]
    fn the_member_mark_reads_back_what_it_wrote() {
        let open = ReferralMark::Open {
            deadline: day("2027-01-31"),
            referrer: super::super::MemberId::parse("0193a0b4-7c1e-7d30-9a51-5b2f8f2c1d10")
                .unwrap(),
        };
        let text = serde_json::to_value(&open).unwrap();
        assert_eq!(text, "270131 0193a0b4-7c1e-7d30-9a51-5b2f8f2c1d10");
        assert_eq!(serde_json::from_value::<ReferralMark>(text).unwrap(), open);
        let closed = serde_json::to_value(ReferralMark::Closed).unwrap();
        assert_eq!(
            serde_json::from_value::<ReferralMark>(closed).unwrap(),
            ReferralMark::Closed
        );
        assert!(serde_json::from_value::<ReferralMark>("270131".into()).is_err());
    }

    #[test]
    fn codes_parse_upper_case_and_refuse_ambiguous_characters() {
        for (input, ok) in [
            ("k7qm4zpa", Some("K7QM4ZPA")),
            (" ABCD ", Some("ABCD")),
            ("ABC", None),
            ("ABCDEFGHJKLMNPQRS", None),
            ("ABCDEFGHJKLMNPQR", Some("ABCDEFGHJKLMNPQR")),
            ("AB0D", None),
            ("ABOD", None),
            ("AB1D", None),
            ("ABID", None),
            ("AB-D", None),
            ("ABÉD", None),
        ] {
            assert_eq!(
                ReferralCode::parse(input).ok().map(String::from).as_deref(),
                ok,
                "{input}"
            );
        }
        let c = ReferralCode::from_draws([0, 31, 32, 8, 9, 10, 11, 12, 13]);
        assert_eq!(
            c.as_str(),
            "2Z2ABCDE",
            "eight draws, each modulo the alphabet"
        );
        assert!(
            ReferralCode::parse(c.as_str()).is_ok(),
            "generated codes parse"
        );
    }

    #[test]
    fn emails_compare_without_case_tags_or_gmail_dots() {
        for (a, b, same) in [
            ("Ada@Example.com", "ada@example.com", true),
            ("ada+ref@example.com", "ada@example.com", true),
            ("a.d.a@gmail.com", "ada@googlemail.com", true),
            ("a.d.a@example.com", "ada@example.com", false),
            ("ada@example.com", "ada@example.org", false),
        ] {
            let c = |e| Contact::of(None, Some(e));
            assert_eq!(
                same_person(&c(a), &c(b)) == Some(FraudRule::SameEmail),
                same,
                "{a} / {b}"
            );
        }
        let phone = |p| Contact::of(Some(p), None);
        assert_eq!(
            same_person(&phone("+15551234567"), &phone("+15551234567")),
            Some(FraudRule::SamePhone)
        );
        assert_eq!(same_person(&Contact::default(), &Contact::default()), None);
        assert_ne!(
            fingerprint("phone", "x"),
            fingerprint("card", "x"),
            "kinds never collide"
        );
    }

    fn application(r: &ReferralRules) -> Application<'_> {
        Application {
            rules: r,
            enrolled_on: day("2027-01-01"),
            today: day("2027-01-01"),
            at_enrolment: true,
            already_referred: false,
            has_purchased: false,
            own_code: false,
            referrer_paid_total: 0,
            contacts: None,
        }
    }

    #[test]
    fn applying_a_code_names_every_refusal() {
        let r = rules();
        let ok = may_apply(&application(&r)).unwrap();
        assert_eq!(ok, (day("2027-01-31"), false, None));
        type Change = Box<dyn Fn(&mut Application)>;
        let cases: Vec<(&str, Change, Option<Refusal>)> = vec![
            (
                "own code",
                Box::new(|a| a.own_code = true),
                Some(Refusal::OwnCode),
            ),
            (
                "already referred",
                Box::new(|a| a.already_referred = true),
                Some(Refusal::AlreadyReferred),
            ),
            (
                "day 30 after enrolment: open",
                Box::new(|a| {
                    a.at_enrolment = false;
                    a.today = day("2027-01-31");
                }),
                None,
            ),
            (
                "day 31: closed",
                Box::new(|a| {
                    a.at_enrolment = false;
                    a.today = day("2027-02-01");
                }),
                Some(Refusal::WindowClosed),
            ),
            (
                "cap reached",
                Box::new(|a| a.referrer_paid_total = 4),
                Some(Refusal::CapReached),
            ),
            (
                "one below the cap",
                Box::new(|a| a.referrer_paid_total = 3),
                None,
            ),
            (
                "same phone under review: applied, flagged",
                Box::new(|a| a.contacts = Some(FraudRule::SamePhone)),
                None,
            ),
        ];
        for (name, change, want) in cases {
            let mut a = application(&r);
            change(&mut a);
            assert_eq!(may_apply(&a).err(), want, "{name}");
        }
        let mut only_enrolment = rules();
        only_enrolment.apply_within_days = 0;
        let mut a = application(&only_enrolment);
        assert!(may_apply(&a).is_ok(), "at enrolment");
        a.at_enrolment = false;
        assert_eq!(
            may_apply(&a).err(),
            Some(Refusal::WindowClosed),
            "same day, later"
        );
        let mut first = rules();
        first.qualify_within_days = 0;
        let mut a = application(&first);
        a.has_purchased = true;
        assert_eq!(may_apply(&a).err(), Some(Refusal::AlreadyPurchased));
        let mut reject = rules();
        reject.on_fraud = OnFraud::Reject;
        let mut a = application(&reject);
        a.contacts = Some(FraudRule::SameEmail);
        assert_eq!(
            may_apply(&a).err(),
            Some(Refusal::SelfReferral(FraudRule::SameEmail))
        );
        let mut off = rules();
        off.enabled = false;
        assert_eq!(may_apply(&application(&off)).err(), Some(Refusal::Disabled));
    }

    fn purchase(amount: i64, today: &str) -> PurchaseFacts {
        PurchaseFacts {
            amount,
            today: day(today),
            now: day(today).and_hms_opt(12, 0, 0).unwrap().and_utc(),
            first: true,
            same_person: None,
        }
    }

    #[test]
    fn a_purchase_qualifies_at_the_minimum_spend_inside_the_window() {
        let r = rules();
        let c = Counts::default();
        let deadline = day("2027-01-31");
        let paid = Qualification::Rewarded(Payout {
            referee: Points(200),
            referrer: Points(500),
            capped: false,
            milestone: None,
        });
        for (amount, on, want) in [
            (2000, "2027-01-31", paid.clone()),
            (1999, "2027-01-31", Qualification::NotYet),
            (2000, "2027-02-01", Qualification::Expired),
        ] {
            assert_eq!(
                qualify(&r, deadline, false, &c, &purchase(amount, on)),
                want
            );
        }
        let mut second = purchase(2000, "2027-01-10");
        second.first = false;
        assert_eq!(
            qualify(&r, deadline, true, &c, &second),
            Qualification::Expired,
            "first purchase only: a second never qualifies"
        );
        assert_eq!(
            qualify(&r, deadline, true, &c, &purchase(1999, "2027-01-10")),
            Qualification::Expired,
            "first purchase only: a small first purchase ends it"
        );
        assert_eq!(qualify(&r, deadline, false, &c, &second), paid);
    }

    #[test]
    fn fraud_rules_hold_or_reject_and_velocity_always_holds() {
        let mut r = rules();
        let c = Counts::default();
        let deadline = day("2027-01-31");
        let mut p = purchase(5000, "2027-01-10");
        p.same_person = Some(FraudRule::SamePayment);
        assert_eq!(
            qualify(&r, deadline, false, &c, &p),
            Qualification::Held(FraudRule::SamePayment)
        );
        r.on_fraud = OnFraud::Reject;
        assert_eq!(
            qualify(&r, deadline, false, &c, &p),
            Qualification::Rejected(FraudRule::SamePayment)
        );
        let p = purchase(5000, "2027-01-10");
        let at = |m: i64| p.now - Duration::minutes(m);
        let mut busy = Counts {
            recent: vec![at(59), at(30), at(1)],
            ..Default::default()
        };
        assert_eq!(
            qualify(&r, deadline, false, &busy, &p),
            Qualification::Held(FraudRule::Velocity),
            "a fourth within the hour, three allowed"
        );
        busy.recent = vec![at(60), at(30), at(1)];
        assert!(
            matches!(
                qualify(&r, deadline, false, &busy, &p),
                Qualification::Rewarded(_)
            ),
            "one of them an hour ago exactly: outside"
        );
    }

    #[test]
    fn caps_stop_the_referrer_reward_monthly_and_in_total() {
        let r = rules();
        let today = day("2027-01-10");
        let now = today.and_hms_opt(9, 0, 0).unwrap().and_utc();
        let mut c = Counts::default();
        let mut paid = Vec::new();
        for _ in 0..3 {
            let p = payout(&r, &c, today);
            paid.push((p.referrer.0, p.capped));
            c.paid_out(&p, now, today, 4, None);
        }
        assert_eq!(paid, [(500, false), (500, false), (0, true)], "2 a month");
        let feb = day("2027-02-01");
        let p = payout(&r, &c, feb);
        assert_eq!((p.referrer.0, p.capped), (500, false), "a new month");
        c.paid_out(&p, now, feb, 4, None);
        c.paid_out(&payout(&r, &c, feb), now, feb, 4, None);
        assert_eq!(c.paid, 4);
        let p = payout(&r, &c, day("2027-03-01"));
        assert!(p.capped, "4 in total");
    }

    #[test]
    fn milestones_pay_every_third_standing_referral_and_a_reversal_takes_the_last_back() {
        let mut r = rules();
        r.monthly_cap = 100;
        r.total_cap = 100;
        let today = day("2027-01-10");
        let now = today.and_hms_opt(9, 0, 0).unwrap().and_utc();
        let origin = super::super::lots::Origin::Pending(day("2027-01-24"));
        let mut c = Counts::default();
        let mut bonuses = Vec::new();
        for _ in 0..3 {
            let p = payout(&r, &c, today);
            bonuses.push(p.milestone);
            c.paid_out(&p, now, today, 4, p.milestone.map(|_| origin));
        }
        assert_eq!(bonuses, [None, None, Some(Points(1000))]);
        assert_eq!((c.standing(), c.points), (3, 2500));
        let back = c.reversed_out(Points(500), false, Some("2027-01"));
        assert_eq!(
            back.len(),
            1,
            "3 → 2 standing: the milestone at 3 comes back"
        );
        assert_eq!((c.standing(), c.points, c.paid), (2, 1000, 2));
        let p = payout(&r, &c, today);
        assert_eq!(
            p.milestone,
            Some(Points(1000)),
            "the third again pays it again"
        );
        c.paid_out(&p, now, today, 4, Some(origin));
        assert_eq!((c.standing(), c.milestones.len()), (3, 1));
        let p = payout(&r, &c, today);
        assert_eq!(p.milestone, None, "4th: none");
    }

    #[test]
    fn a_cap_caps_milestones_too_and_capped_referrals_do_not_count_towards_them() {
        // The case found from outside: a monthly cap of 3, a milestone every 2, twelve
        // referees qualifying in one month. Paid: 3 × 500 and one milestone (at the 2nd).
        let mut r = rules();
        r.monthly_cap = 3;
        r.total_cap = 100;
        r.milestone = Some(Milestone {
            every: 2,
            points: Points(1000),
        });
        let today = day("2027-01-10");
        let now = today.and_hms_opt(9, 0, 0).unwrap().and_utc();
        let origin = super::super::lots::Origin::Pending(day("2027-01-24"));
        let mut c = Counts::default();
        let mut paid = Vec::new();
        for _ in 0..12 {
            let p = payout(&r, &c, today);
            paid.push((p.referrer.0, p.milestone.map(|m| m.0), p.capped));
            c.paid_out(&p, now, today, 20, p.milestone.map(|_| origin));
        }
        assert_eq!(paid[0], (500, None, false));
        assert_eq!(paid[1], (500, Some(1000), false), "the 2nd paid referral");
        assert_eq!(paid[2], (500, None, false));
        assert!(
            paid[3..].iter().all(|p| *p == (0, None, true)),
            "capped: neither reward nor milestone: {paid:?}"
        );
        assert_eq!((c.points, c.paid, c.standing()), (2500, 3, 12));
        // A capped referral's reversal takes nothing from the referrer.
        assert!(c.reversed_out(Points(0), true, None).is_empty());
        assert_eq!((c.points, c.paid), (2500, 3));
        // A paid one's does: 3 → 2 paid keeps the milestone at 2; 2 → 1 takes it back.
        assert!(
            c.reversed_out(Points(500), false, Some("2027-01"))
                .is_empty()
        );
        let back = c.reversed_out(Points(500), false, Some("2027-01"));
        assert_eq!(back.len(), 1);
        assert_eq!((c.points, c.paid), (500, 1));
        // Next month the 2nd paid referral pays the milestone again.
        let feb = day("2027-02-01");
        let p = payout(&r, &c, feb);
        assert_eq!(
            (p.referrer.0, p.milestone, p.capped),
            (500, Some(Points(1000)), false)
        );
    }

    #[test]
    fn a_refund_reverses_only_inside_the_window_and_below_the_minimum() {
        let r = rules();
        let bought = day("2027-01-10");
        for (refunded, today, want) in [
            (1001, "2027-01-24", true),
            (1000, "2027-01-24", false),
            (1001, "2027-01-25", false),
            (3000, "2027-01-10", true),
        ] {
            assert_eq!(
                refund_reverses(&r, 3000, refunded, bought, day(today), 14),
                want,
                "{refunded} refunded on {today}"
            );
        }
    }

    #[test]
    fn a_refund_rejects_a_held_referral_reverses_a_paid_one_and_touches_no_other() {
        let bought = day("2027-01-10");
        let ours = super::super::receipt::PurchaseRef {
            store_id: super::super::StoreId::parse("store-1").unwrap(),
            receipt_id: super::super::ReceiptId::parse("R-1").unwrap(),
        };
        let other = super::super::receipt::PurchaseRef {
            receipt_id: super::super::ReceiptId::parse("R-2").unwrap(),
            ..ours.clone()
        };
        let seen = |of, refunded_total, today| RefundSeen {
            of,
            amount: 3000,
            refunded_total,
            today: day(today),
        };
        use ReferralStatus::*;
        use RefundVerdict::*;
        for (status, refund, want) in [
            (Rewarded, seen(&ours, 1001, "2027-01-24"), Reverse),
            (Held, seen(&ours, 1001, "2027-01-24"), Reject),
            (Rewarded, seen(&other, 3000, "2027-01-10"), Untouched),
            (Rewarded, seen(&ours, 1000, "2027-01-24"), Untouched),
            (Held, seen(&ours, 1001, "2027-01-25"), Untouched),
            (Reversed, seen(&ours, 3000, "2027-01-10"), Untouched),
            (Rejected, seen(&ours, 3000, "2027-01-10"), Untouched),
            (Applied, seen(&ours, 3000, "2027-01-10"), Untouched),
        ] {
            let mut r = referral("bea", status, (200, 500, 0, 0));
            r.purchase = Some(ours.clone());
            r.bought_on = Some(bought);
            assert_eq!(r.on_refund(&refund, &rules(), 14), want, "{status:?}");
        }
    }

    #[test]
    fn an_applied_referral_waits_for_a_purchase_with_nothing_paid_or_decided() {
        let at = day("2027-01-05").and_hms_opt(9, 0, 0).unwrap().and_utc();
        let (bea, ada) = (
            super::super::MemberId::parse("bea").unwrap(),
            super::super::MemberId::parse("ada").unwrap(),
        );
        let code = ReferralCode::parse("ADAPALS").unwrap();
        let r = Referral::applied(&bea, &ada, &code, (at, day("2027-02-04"), true));
        let mut want = referral("bea", ReferralStatus::Applied, (0, 0, 0, 0));
        want.first_only = true;
        want.qualified_at = None;
        assert_eq!(r, want);
    }

    #[test]
    fn a_judged_referral_counts_once_on_its_side_under_its_rule() {
        for (held, rule) in [
            (true, FraudRule::SamePayment),
            (false, FraudRule::SamePhone),
        ] {
            let mut r = referral("bea", ReferralStatus::Applied, (0, 0, 0, 0));
            let mut counts = Counts::default();
            r.judge(rule, held, &mut counts);
            assert_eq!(r.rule, Some(rule));
            assert_eq!(
                (counts.held, counts.rejected),
                if held { (1, 0) } else { (0, 1) }
            );
            let status = if held {
                ReferralStatus::Held
            } else {
                ReferralStatus::Rejected
            };
            assert_eq!(r.status, status);
        }
    }

    #[test]
    fn a_paid_referral_keeps_each_sides_points_and_counts_in_its_month_unless_capped() {
        let now = day("2027-03-31").and_hms_opt(23, 0, 0).unwrap().and_utc();
        for (capped, milestone, month) in [
            (false, Some(Points(1000)), Some("2027-03")),
            (true, None, None),
        ] {
            let mut r = referral("bea", ReferralStatus::Applied, (0, 0, 0, 0));
            let p = Payout {
                referee: Points(200),
                referrer: Points(if capped { 0 } else { 500 }),
                capped,
                milestone,
            };
            r.paid(&p, now, day("2027-03-31"));
            assert_eq!(r.status, ReferralStatus::Rewarded);
            assert_eq!(r.qualified_at, Some(now));
            assert_eq!(
                (r.referee_points, r.referrer_points),
                (p.referee, p.referrer)
            );
            assert_eq!(r.milestone_points, milestone.unwrap_or(Points::ZERO));
            assert_eq!((r.capped, r.paid_month.as_deref()), (capped, month));
        }
    }

    #[test]
    fn a_refund_rejects_a_held_referral_and_moves_the_count() {
        let mut r = referral("bea", ReferralStatus::Held, (0, 0, 0, 0));
        r.rule = Some(FraudRule::SamePayment);
        let mut counts = Counts {
            held: 1,
            ..Counts::default()
        };
        r.reject_on_refund(Some(&mut counts));
        assert_eq!(r.status, ReferralStatus::Rejected);
        assert_eq!(r.rule, Some(FraudRule::SamePayment));
        assert_eq!((counts.held, counts.rejected), (0, 1));
        // The referrer erased: no counts to move.
        let mut r = referral("bea", ReferralStatus::Held, (0, 0, 0, 0));
        r.reject_on_refund(None);
        assert_eq!(r.status, ReferralStatus::Rejected);
    }

    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        /// A referral qualifies on day `day` of 2027 (0–364).
        Pay(i64),
        /// The `n`-th standing paid referral (mod how many) is reversed.
        Reverse(usize),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                3 => (0i64..365).prop_map(Op::Pay),
                1 => (0usize..50).prop_map(Op::Reverse),
            ],
            0..80,
        )
    }

    proptest! {
        /// Over any sequence of qualifications (in day order) and reversals: caps never passed,
        /// milestones = ⌊paid and standing / every⌋ (a capped referral pays no milestone), and
        /// the referrer's points are exactly what stands.
        #[test]
        fn counts_keep_caps_milestones_and_points_over_any_sequence(
            mut seq in ops(), monthly in 1u32..5, total in 1u32..12, every in 2u32..5,
        ) {
            let mut r = rules();
            r.monthly_cap = monthly;
            r.total_cap = total;
            r.milestone = Some(Milestone { every, points: Points(1000) });
            let origin = super::super::lots::Origin::Available(None);
            // Days ascend, as a clock does.
            let mut days: Vec<i64> = seq.iter().filter_map(|o| match o { Op::Pay(d) => Some(*d), _ => None }).collect();
            days.sort();
            let mut next = days.into_iter();
            for o in seq.iter_mut() {
                if let Op::Pay(d) = o { *d = next.next().unwrap(); }
            }
            let start = day("2027-01-01");
            let mut c = Counts::default();
            // What stands: (referrer points, capped, month).
            let mut standing: Vec<(Points, bool, Option<String>)> = Vec::new();
            let mut today = start;
            for o in seq {
                match o {
                    Op::Pay(d) => {
                        today = start + Duration::days(d);
                        let now = today.and_hms_opt(12, 0, 0).unwrap().and_utc();
                        let p = payout(&r, &c, today);
                        c.paid_out(&p, now, today, 4, p.milestone.map(|_| origin));
                        standing.push((p.referrer, p.capped, (!p.capped).then(|| month_of(today))));
                    }
                    Op::Reverse(n) if !standing.is_empty() => {
                        let (points, capped, month) = standing.remove(n % standing.len());
                        c.reversed_out(points, capped, month.as_deref());
                    }
                    Op::Reverse(_) => {}
                }
                let paid = standing.iter().filter(|s| !s.1).count() as u32;
                prop_assert_eq!(c.paid, paid);
                prop_assert!(c.paid <= total);
                prop_assert!(c.paid_this_month(today) <= monthly);
                prop_assert_eq!(c.standing(), standing.len() as u32);
                prop_assert_eq!(c.milestones.len() as u32, c.paid / every);
                prop_assert!(c.milestones.iter().all(|m| m.at <= c.paid));
                let referrer: i64 = standing.iter().map(|s| s.0.0).sum();
                prop_assert_eq!(c.points, referrer + 1000 * c.milestones.len() as i64);
            }
        }
    }
}
