//! The rules of custom segments (DESIGN.md "Custom segments"): the grammar operators write
//! (`all`/`any`/`not` over conditions `{field, op, value}`), its parsing with the path of the
//! first mistake, and the evaluation of a parsed rule over one member's [`Facts`]. Pure: the
//! service gathers the facts (member item, traits, model, campaigns) and asks.
//!
//! A condition on a fact the member does not have (no purchase yet, no fit yet) is false
//! whatever its operator, `ne` and `not_in` included; only `not` turns it round. So `not` is
//! the exact complement and "has no X" is said with `not` over `exists`.

use super::Tier;
use super::money::{Currency, Money};
use super::segment::{Lifecycle, ValueSegment};
use chrono::NaiveDate;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// At most this many nested groups (`all`, `any`, `not`) above any condition.
pub const MAX_DEPTH: usize = 4;
/// At most this many conditions in a rule.
pub const MAX_CONDITIONS: usize = 50;
/// At most this many values in an `in`/`not_in` list.
pub const MAX_LIST: usize = 100;

/// What a field holds, which decides the operators it takes and the values they take.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A whole number (points, counts, days, scores, a month 1–12).
    Int {
        min: i64,
        max: i64,
    },
    /// A number (a probability 0–1, an expected count).
    Num {
        min: f64,
        max: f64,
    },
    /// An amount of money in the program's currency: `{"value": minor units, "currency"}`.
    Money,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A tier, ordered silver < gold < diamond.
    Tier,
    /// One of a fixed set of words.
    Word(&'static [&'static str]),
    /// Free text (a store id, a time zone).
    Text,
    Bool,
    /// A set of words (tags, categories, campaign ids): `contains` and `exists`.
    Set,
}

/// Every field a condition may name, with its kind and what it means (API.md lists them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Tier,
    Lifecycle,
    Value,
    RfmR,
    RfmF,
    RfmM,
    EnrolledOn,
    BirthdayMonth,
    Timezone,
    HomeStore,
    Tags,
    Referred,
    HasEmail,
    HasPhone,
    DaysSinceLastPurchase,
    Purchases12m,
    Spend12m,
    PurchasesInLastMonths,
    CategoriesBought12m,
    Redemptions12m,
    Balance,
    Pending,
    LifetimeEarned,
    Expiring30d,
    ChurnProbability,
    PAlive,
    ExpectedPurchases,
    Clv,
    InCampaign,
}

const LIFECYCLES: &[&str] = &[
    "prospect",
    "new",
    "active",
    "dormant",
    "churned",
    "reactivated",
];
const VALUES: &[&str] = &["high_value", "potential", "at_risk", "regular"];
const POINTS: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};
const COUNT: Kind = POINTS;
const SCORE: Kind = Kind::Int { min: 1, max: 5 };
const PROBABILITY: Kind = Kind::Num { min: 0.0, max: 1.0 };

/// Which group of the builder a field sits in (the console groups them so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Profile,
    Behaviour,
    Points,
    Predictions,
    Campaigns,
}

impl Field {
    pub const ALL: [Field; 29] = [
        Field::Tier,
        Field::Lifecycle,
        Field::Value,
        Field::RfmR,
        Field::RfmF,
        Field::RfmM,
        Field::EnrolledOn,
        Field::BirthdayMonth,
        Field::Timezone,
        Field::HomeStore,
        Field::Tags,
        Field::Referred,
        Field::HasEmail,
        Field::HasPhone,
        Field::DaysSinceLastPurchase,
        Field::Purchases12m,
        Field::Spend12m,
        Field::PurchasesInLastMonths,
        Field::CategoriesBought12m,
        Field::Redemptions12m,
        Field::Balance,
        Field::Pending,
        Field::LifetimeEarned,
        Field::Expiring30d,
        Field::ChurnProbability,
        Field::PAlive,
        Field::ExpectedPurchases,
        Field::Clv,
        Field::InCampaign,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Tier => "tier",
            Field::Lifecycle => "lifecycle",
            Field::Value => "value",
            Field::RfmR => "rfm.r",
            Field::RfmF => "rfm.f",
            Field::RfmM => "rfm.m",
            Field::EnrolledOn => "enrolled_on",
            Field::BirthdayMonth => "birthday_month",
            Field::Timezone => "timezone",
            Field::HomeStore => "home_store",
            Field::Tags => "tags",
            Field::Referred => "referred",
            Field::HasEmail => "has_email",
            Field::HasPhone => "has_phone",
            Field::DaysSinceLastPurchase => "days_since_last_purchase",
            Field::Purchases12m => "purchases_12m",
            Field::Spend12m => "spend_12m",
            Field::PurchasesInLastMonths => "purchases_in_last_months",
            Field::CategoriesBought12m => "categories_bought_12m",
            Field::Redemptions12m => "redemptions_12m",
            Field::Balance => "balance",
            Field::Pending => "pending",
            Field::LifetimeEarned => "lifetime_earned",
            Field::Expiring30d => "expiring_30d",
            Field::ChurnProbability => "churn_probability",
            Field::PAlive => "p_alive",
            Field::ExpectedPurchases => "expected_purchases",
            Field::Clv => "clv",
            Field::InCampaign => "in_campaign",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == s)
    }

    pub fn kind(self) -> Kind {
        match self {
            Field::Tier => Kind::Tier,
            Field::Lifecycle => Kind::Word(LIFECYCLES),
            Field::Value => Kind::Word(VALUES),
            Field::RfmR | Field::RfmF | Field::RfmM => SCORE,
            Field::EnrolledOn => Kind::Date,
            Field::BirthdayMonth => Kind::Int { min: 1, max: 12 },
            Field::Timezone | Field::HomeStore => Kind::Text,
            Field::Tags | Field::CategoriesBought12m | Field::InCampaign => Kind::Set,
            Field::Referred | Field::HasEmail | Field::HasPhone => Kind::Bool,
            Field::DaysSinceLastPurchase
            | Field::Purchases12m
            | Field::PurchasesInLastMonths
            | Field::Redemptions12m => COUNT,
            Field::Spend12m | Field::Clv => Kind::Money,
            Field::Balance | Field::Pending | Field::LifetimeEarned | Field::Expiring30d => POINTS,
            Field::ChurnProbability | Field::PAlive => PROBABILITY,
            Field::ExpectedPurchases => Kind::Num {
                min: 0.0,
                max: f64::MAX,
            },
        }
    }

    pub fn group(self) -> Group {
        match self {
            Field::Tier
            | Field::Lifecycle
            | Field::Value
            | Field::RfmR
            | Field::RfmF
            | Field::RfmM
            | Field::EnrolledOn
            | Field::BirthdayMonth
            | Field::Timezone
            | Field::HomeStore
            | Field::Tags
            | Field::Referred
            | Field::HasEmail
            | Field::HasPhone => Group::Profile,
            Field::DaysSinceLastPurchase
            | Field::Purchases12m
            | Field::Spend12m
            | Field::PurchasesInLastMonths
            | Field::CategoriesBought12m
            | Field::Redemptions12m => Group::Behaviour,
            Field::Balance | Field::Pending | Field::LifetimeEarned | Field::Expiring30d => {
                Group::Points
            }
            Field::ChurnProbability | Field::PAlive | Field::ExpectedPurchases | Field::Clv => {
                Group::Predictions
            }
            Field::InCampaign => Group::Campaigns,
        }
    }

    /// The operators a field takes.
    pub fn ops(self) -> &'static [Op] {
        use Op::*;
        match self.kind() {
            Kind::Int { .. } | Kind::Num { .. } | Kind::Money | Kind::Date | Kind::Tier => {
                &[Eq, Ne, In, NotIn, Gt, Gte, Lt, Lte, Between, Exists]
            }
            Kind::Word(_) | Kind::Text => &[Eq, Ne, In, NotIn, Exists],
            Kind::Bool => &[Eq, Ne, Exists],
            Kind::Set => &[Contains, Exists],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Eq,
    Ne,
    In,
    NotIn,
    Gt,
    Gte,
    Lt,
    Lte,
    Between,
    Contains,
    Exists,
}

impl Op {
    pub const ALL: [Op; 11] = [
        Op::Eq,
        Op::Ne,
        Op::In,
        Op::NotIn,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::Between,
        Op::Contains,
        Op::Exists,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Between => "between",
            Op::Contains => "contains",
            Op::Exists => "exists",
        }
    }
    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }
}

/// One value a condition compares with, of its field's kind. Numbers of every kind compare as
/// `f64` after parsing (integers and minor units up to 2^53 exactly).
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Num(f64),
    Date(NaiveDate),
    Text(String),
    Bool(bool),
}

impl PartialOrd for Scalar {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Scalar::Num(a), Scalar::Num(b)) => a.partial_cmp(b),
            (Scalar::Date(a), Scalar::Date(b)) => a.partial_cmp(b),
            (Scalar::Text(a), Scalar::Text(b)) => a.partial_cmp(b),
            (Scalar::Bool(a), Scalar::Bool(b)) => a.partial_cmp(b),
            _ => None,
        }
    }
}

/// What a condition's operator takes.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    None,
    One(Scalar),
    List(Vec<Scalar>),
    Range(Scalar, Scalar),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub field: Field,
    pub op: Op,
    pub operand: Operand,
    /// `purchases_in_last_months`' window, 1–12 (this month and the months before it).
    pub months: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    Cond(Condition),
}

/// Why a rule does not parse: the path of the first mistake (`rule.all[2].any[0].value`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub path: String,
    pub message: String,
}

fn err<T>(path: &str, message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError {
        path: path.into(),
        message: message.into(),
    })
}

/// What one member is, as far as rules can ask. `None`: the member has no such fact.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    pub tier: Option<Tier>,
    pub lifecycle: Option<Lifecycle>,
    pub value: Option<ValueSegment>,
    pub rfm: Option<[u8; 3]>,
    pub enrolled_on: Option<NaiveDate>,
    pub birthday_month: Option<u32>,
    pub timezone: Option<String>,
    pub home_store: Option<String>,
    pub tags: BTreeSet<String>,
    pub referred: bool,
    pub has_email: bool,
    pub has_phone: bool,
    pub days_since_last_purchase: Option<i64>,
    /// Purchases in this program month (index 0) and each of the 11 before it.
    pub purchases_by_month: [i64; 12],
    pub spend_12m: i64,
    pub categories_12m: BTreeSet<String>,
    pub redemptions_12m: i64,
    pub balance: i64,
    pub pending: i64,
    pub lifetime_earned: i64,
    pub expiring_30d: i64,
    pub churn_probability: Option<f64>,
    pub p_alive: Option<f64>,
    pub expected_purchases: Option<f64>,
    /// Minor units.
    pub clv: Option<i64>,
    /// The running campaigns the member is in the treatment group of.
    pub campaigns: BTreeSet<String>,
}

/// A fact as a rule sees it.
enum Fact<'a> {
    Missing,
    One(Scalar),
    Set(&'a BTreeSet<String>),
}

fn num(n: i64) -> Fact<'static> {
    Fact::One(Scalar::Num(n as f64))
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Scalar) -> Fact<'static> {
    v.map_or(Fact::Missing, |v| Fact::One(f(v)))
}

fn tier_rank(t: Tier) -> f64 {
    match t {
        Tier::Silver => 0.0,
        Tier::Gold => 1.0,
        Tier::Diamond => 2.0,
    }
}

impl Facts {
    fn fact(&self, c: &Condition) -> Fact<'_> {
        let text = |s: &Option<String>| opt(s.clone(), Scalar::Text);
        let word = |s: Option<&'static str>| opt(s, |w| Scalar::Text(w.into()));
        let rfm = |i: usize| opt(self.rfm, |r| Scalar::Num(f64::from(r[i])));
        match c.field {
            Field::Tier => opt(self.tier, |t| Scalar::Num(tier_rank(t))),
            Field::Lifecycle => word(self.lifecycle.map(Lifecycle::as_str)),
            Field::Value => word(self.value.map(ValueSegment::as_str)),
            Field::RfmR => rfm(0),
            Field::RfmF => rfm(1),
            Field::RfmM => rfm(2),
            Field::EnrolledOn => opt(self.enrolled_on, Scalar::Date),
            Field::BirthdayMonth => opt(self.birthday_month, |m| Scalar::Num(f64::from(m))),
            Field::Timezone => text(&self.timezone),
            Field::HomeStore => text(&self.home_store),
            Field::Tags => Fact::Set(&self.tags),
            Field::Referred => Fact::One(Scalar::Bool(self.referred)),
            Field::HasEmail => Fact::One(Scalar::Bool(self.has_email)),
            Field::HasPhone => Fact::One(Scalar::Bool(self.has_phone)),
            Field::DaysSinceLastPurchase => {
                opt(self.days_since_last_purchase, |d| Scalar::Num(d as f64))
            }
            Field::Purchases12m => num(self.purchases_by_month.iter().sum()),
            Field::PurchasesInLastMonths => {
                let n = c.months.unwrap_or(12).clamp(1, 12) as usize;
                num(self.purchases_by_month[..n].iter().sum())
            }
            Field::Spend12m => num(self.spend_12m),
            Field::CategoriesBought12m => Fact::Set(&self.categories_12m),
            Field::Redemptions12m => num(self.redemptions_12m),
            Field::Balance => num(self.balance),
            Field::Pending => num(self.pending),
            Field::LifetimeEarned => num(self.lifetime_earned),
            Field::Expiring30d => num(self.expiring_30d),
            Field::ChurnProbability => opt(self.churn_probability, Scalar::Num),
            Field::PAlive => opt(self.p_alive, Scalar::Num),
            Field::ExpectedPurchases => opt(self.expected_purchases, Scalar::Num),
            Field::Clv => opt(self.clv, |v| Scalar::Num(v as f64)),
            Field::InCampaign => Fact::Set(&self.campaigns),
        }
    }
}

impl Condition {
    pub fn holds(&self, facts: &Facts) -> bool {
        match (facts.fact(self), &self.operand) {
            (Fact::Missing, _) => false,
            (Fact::Set(s), Operand::None) => !s.is_empty(),
            (Fact::Set(s), Operand::One(Scalar::Text(t))) => s.contains(t),
            (Fact::Set(_), _) => false,
            (Fact::One(_), Operand::None) => true,
            (Fact::One(v), Operand::One(x)) => match self.op {
                Op::Eq => v == *x,
                Op::Ne => v != *x,
                Op::Gt => v > *x,
                Op::Gte => v >= *x,
                Op::Lt => v < *x,
                Op::Lte => v <= *x,
                _ => false,
            },
            (Fact::One(v), Operand::List(xs)) => (self.op == Op::In) == xs.contains(&v),
            (Fact::One(v), Operand::Range(lo, hi)) => *lo <= v && v <= *hi,
        }
    }
}

impl Rule {
    pub fn holds(&self, facts: &Facts) -> bool {
        match self {
            Rule::All(rs) => rs.iter().all(|r| r.holds(facts)),
            Rule::Any(rs) => rs.iter().any(|r| r.holds(facts)),
            Rule::Not(r) => !r.holds(facts),
            Rule::Cond(c) => c.holds(facts),
        }
    }

    /// Every field the rule names (what the evaluation must gather).
    pub fn fields(&self) -> BTreeSet<Field> {
        let mut out = BTreeSet::new();
        self.visit(&mut |c| {
            out.insert(c.field);
        });
        out
    }

    fn visit(&self, f: &mut impl FnMut(&Condition)) {
        match self {
            Rule::All(rs) | Rule::Any(rs) => rs.iter().for_each(|r| r.visit(f)),
            Rule::Not(r) => r.visit(f),
            Rule::Cond(c) => f(c),
        }
    }

    /// Parses a rule as operators write it (`path` names it in errors: `rule`), checking every
    /// field, operator and value, the depth and the number of conditions. Money is in
    /// `currency`.
    pub fn parse(v: &Value, path: &str, currency: Currency) -> Result<Rule, RuleError> {
        let mut count = 0;
        let rule = parse_rule(v, path, 0, currency, &mut count)?;
        if count > MAX_CONDITIONS {
            return err(
                path,
                format!("a rule has at most {MAX_CONDITIONS} conditions; this one has {count}"),
            );
        }
        Ok(rule)
    }

    /// The rule as operators write it (what [`Rule::parse`] reads back to the same rule).
    pub fn to_json(&self, currency: Currency) -> Value {
        match self {
            Rule::All(rs) => {
                json!({"all": rs.iter().map(|r| r.to_json(currency)).collect::<Vec<_>>()})
            }
            Rule::Any(rs) => {
                json!({"any": rs.iter().map(|r| r.to_json(currency)).collect::<Vec<_>>()})
            }
            Rule::Not(r) => json!({"not": r.to_json(currency)}),
            Rule::Cond(c) => {
                let kind = c.field.kind();
                let one = |s: &Scalar| scalar_json(kind, s, currency);
                let mut out = json!({"field": c.field.name(), "op": c.op.name()});
                match &c.operand {
                    Operand::None => {}
                    Operand::One(s) => out["value"] = one(s),
                    Operand::List(xs) => out["value"] = Value::Array(xs.iter().map(one).collect()),
                    Operand::Range(lo, hi) => out["value"] = json!([one(lo), one(hi)]),
                }
                if let Some(m) = c.months {
                    out["months"] = json!(m);
                }
                out
            }
        }
    }
}

fn scalar_json(kind: Kind, s: &Scalar, currency: Currency) -> Value {
    match (kind, s) {
        (Kind::Tier, Scalar::Num(n)) => json!(
            Tier::ALL
                .into_iter()
                .find(|t| tier_rank(*t) == *n)
                .map_or("silver", Tier::as_str)
        ),
        (Kind::Money, Scalar::Num(n)) => json!(Money::new(*n as i64, currency)),
        (Kind::Int { .. }, Scalar::Num(n)) => json!(*n as i64),
        (_, Scalar::Num(n)) => json!(n),
        (_, Scalar::Date(d)) => json!(d.format("%Y-%m-%d").to_string()),
        (_, Scalar::Text(t)) => json!(t),
        (_, Scalar::Bool(b)) => json!(b),
    }
}

fn parse_rule(
    v: &Value,
    path: &str,
    depth: usize,
    currency: Currency,
    count: &mut usize,
) -> Result<Rule, RuleError> {
    let Some(obj) = v.as_object() else {
        return err(
            path,
            "a rule is an object: {\"all\": [...]}, {\"any\": [...]}, {\"not\": ...} or a condition",
        );
    };
    let group = ["all", "any", "not"]
        .into_iter()
        .find(|k| obj.contains_key(*k));
    let Some(group) = group else {
        *count += 1;
        return parse_condition(obj, path, currency).map(Rule::Cond);
    };
    if obj.len() != 1 {
        return err(
            path,
            format!(
                "a \"{group}\" group has no other member (found {})",
                keys(obj)
            ),
        );
    }
    if depth >= MAX_DEPTH {
        return err(path, format!("rules nest at most {MAX_DEPTH} groups deep"));
    }
    let here = format!("{path}.{group}");
    if group == "not" {
        return Ok(Rule::Not(Box::new(parse_rule(
            &obj["not"],
            &here,
            depth + 1,
            currency,
            count,
        )?)));
    }
    let Some(items) = obj[group].as_array() else {
        return err(&here, format!("\"{group}\" takes a list of rules"));
    };
    if items.is_empty() {
        return err(&here, format!("\"{group}\" needs at least one rule"));
    }
    let rules = items
        .iter()
        .enumerate()
        .map(|(i, r)| parse_rule(r, &format!("{here}[{i}]"), depth + 1, currency, count))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if group == "all" {
        Rule::All(rules)
    } else {
        Rule::Any(rules)
    })
}

fn keys(obj: &serde_json::Map<String, Value>) -> String {
    obj.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn parse_condition(
    obj: &serde_json::Map<String, Value>,
    path: &str,
    currency: Currency,
) -> Result<Condition, RuleError> {
    if let Some(k) = obj
        .keys()
        .find(|k| !["field", "op", "value", "months"].contains(&k.as_str()))
    {
        return err(
            &format!("{path}.{k}"),
            "a condition has only field, op, value (and months for purchases_in_last_months)",
        );
    }
    let fpath = format!("{path}.field");
    let name = obj.get("field").and_then(Value::as_str);
    let Some(name) = name else {
        return err(&fpath, "a condition names its field (a string)");
    };
    let Some(field) = Field::parse(name) else {
        return err(&fpath, format!("unknown field \"{name}\""));
    };
    let opath = format!("{path}.op");
    let Some(op_name) = obj.get("op").and_then(Value::as_str) else {
        return err(&opath, "a condition names its operator (a string)");
    };
    let Some(op) = Op::parse(op_name).filter(|o| field.ops().contains(o)) else {
        let takes: Vec<_> = field.ops().iter().map(|o| o.name()).collect();
        return err(
            &opath,
            format!("{name} takes the operators {}", takes.join(", ")),
        );
    };
    let months = match (field, obj.get("months")) {
        (Field::PurchasesInLastMonths, Some(m)) => match m.as_u64() {
            Some(m @ 1..=12) => Some(m as u32),
            _ => {
                return err(
                    &format!("{path}.months"),
                    "months is a whole number 1 to 12",
                );
            }
        },
        (Field::PurchasesInLastMonths, None) => {
            return err(
                &format!("{path}.months"),
                "purchases_in_last_months needs months (1 to 12)",
            );
        }
        (_, Some(_)) => {
            return err(
                &format!("{path}.months"),
                "only purchases_in_last_months takes months",
            );
        }
        (_, None) => None,
    };
    let vpath = format!("{path}.value");
    let value = obj.get("value");
    let kind = field.kind();
    let operand = match (op, value) {
        (Op::Exists, None) => Operand::None,
        (Op::Exists, Some(_)) => return err(&vpath, "exists takes no value"),
        (_, None) => return err(&vpath, format!("{} needs a value", op.name())),
        (Op::In | Op::NotIn, Some(v)) => {
            let Some(xs) = v
                .as_array()
                .filter(|xs| !xs.is_empty() && xs.len() <= MAX_LIST)
            else {
                return err(
                    &vpath,
                    format!("{} takes a list of 1 to {MAX_LIST} values", op.name()),
                );
            };
            Operand::List(
                xs.iter()
                    .enumerate()
                    .map(|(i, x)| scalar(kind, x, &format!("{vpath}[{i}]"), currency))
                    .collect::<Result<_, _>>()?,
            )
        }
        (Op::Between, Some(v)) => {
            let Some([lo, hi]) = v
                .as_array()
                .map(Vec::as_slice)
                .and_then(|s| <&[Value; 2]>::try_from(s).ok())
            else {
                return err(&vpath, "between takes [low, high]");
            };
            let lo = scalar(kind, lo, &format!("{vpath}[0]"), currency)?;
            let hi = scalar(kind, hi, &format!("{vpath}[1]"), currency)?;
            if hi < lo {
                return err(&vpath, "between takes [low, high] with low ≤ high");
            }
            Operand::Range(lo, hi)
        }
        (Op::Contains, Some(v)) => match v.as_str() {
            Some(s) if !s.is_empty() => Operand::One(Scalar::Text(s.into())),
            _ => return err(&vpath, "contains takes a non-empty string"),
        },
        (_, Some(v)) => Operand::One(scalar(kind, v, &vpath, currency)?),
    };
    Ok(Condition {
        field,
        op,
        operand,
        months,
    })
}

/// One value of `kind`.
fn scalar(kind: Kind, v: &Value, path: &str, currency: Currency) -> Result<Scalar, RuleError> {
    match kind {
        Kind::Int { min, max } => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) && n.unsigned_abs() <= 1 << 53 => {
                Ok(Scalar::Num(n as f64))
            }
            _ => err(
                path,
                format!("a whole number {min} to {}", max.min(1 << 53)),
            ),
        },
        Kind::Num { min, max } => match v.as_f64() {
            Some(n) if n.is_finite() && (min..=max).contains(&n) => Ok(Scalar::Num(n)),
            _ if max == 1.0 => err(path, "a number 0 to 1"),
            _ => err(path, format!("a number {min} or more")),
        },
        Kind::Money => match serde_json::from_value::<Money>(v.clone()) {
            Ok(m) if m.currency != currency => {
                err(path, format!("money in the program's currency, {currency}"))
            }
            Ok(m) if m.value.unsigned_abs() <= 1 << 53 => Ok(Scalar::Num(m.value as f64)),
            _ => err(
                path,
                format!("money: {{\"value\": minor units, \"currency\": \"{currency}\"}}"),
            ),
        },
        Kind::Date => v
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .map(Scalar::Date)
            .map_or_else(|| err(path, "a date, YYYY-MM-DD"), Ok),
        Kind::Tier => v
            .as_str()
            .and_then(|s| Tier::ALL.into_iter().find(|t| t.as_str() == s))
            .map(|t| Scalar::Num(tier_rank(t)))
            .map_or_else(|| err(path, "a tier: silver, gold or diamond"), Ok),
        Kind::Word(words) => match v.as_str() {
            Some(s) if words.contains(&s) => Ok(Scalar::Text(s.into())),
            _ => err(path, format!("one of {}", words.join(", "))),
        },
        Kind::Text => match v.as_str() {
            Some(s) if !s.is_empty() && s.len() <= 128 => Ok(Scalar::Text(s.into())),
            _ => err(path, "a string of 1 to 128 characters"),
        },
        Kind::Bool => v
            .as_bool()
            .map(Scalar::Bool)
            .map_or_else(|| err(path, "true or false"), Ok),
        Kind::Set => err(path, "sets take contains or exists"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const USD: Currency = Currency::USD;

    fn parse(v: Value) -> Result<Rule, RuleError> {
        Rule::parse(&v, "rule", USD)
    }

    fn holds(v: Value, f: &Facts) -> bool {
        parse(v).expect("parses").holds(f)
    }

    fn refused(v: Value) -> (String, String) {
        let e = parse(v).expect_err("refused");
        (e.path, e.message)
    }

    fn member() -> Facts {
        Facts {
            tier: Some(Tier::Gold),
            lifecycle: Some(Lifecycle::Active),
            value: Some(ValueSegment::HighValue),
            rfm: Some([5, 3, 1]),
            enrolled_on: NaiveDate::from_ymd_opt(2026, 3, 15),
            birthday_month: Some(7),
            timezone: Some("Asia/Shanghai".into()),
            home_store: Some("store-1".into()),
            tags: ["vip".to_string()].into(),
            referred: true,
            has_email: false,
            has_phone: true,
            days_since_last_purchase: Some(30),
            purchases_by_month: [1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 4],
            spend_12m: 12_000,
            categories_12m: ["tea".to_string()].into(),
            redemptions_12m: 2,
            balance: 500,
            pending: 0,
            lifetime_earned: 900,
            expiring_30d: 100,
            churn_probability: Some(0.25),
            p_alive: Some(0.75),
            expected_purchases: Some(1.5),
            clv: Some(4_250),
            campaigns: BTreeSet::new(),
        }
    }

    fn cond(field: &str, op: &str, value: Value) -> Value {
        json!({"field": field, "op": op, "value": value})
    }

    /// Each ordered field at its boundary: below, at and above, with every comparison.
    #[test]
    fn comparisons_hold_at_every_boundary_of_every_ordered_field() {
        let m = member();
        let usd = |v: i64| json!({"value": v, "currency": "USD"});
        let cases: Vec<(&str, Value, Value, Value)> = vec![
            ("tier", json!("silver"), json!("gold"), json!("diamond")),
            ("rfm.r", json!(4), json!(5), json!(5)),
            ("rfm.f", json!(2), json!(3), json!(4)),
            ("rfm.m", json!(1), json!(1), json!(2)),
            (
                "enrolled_on",
                json!("2026-03-14"),
                json!("2026-03-15"),
                json!("2026-03-16"),
            ),
            ("birthday_month", json!(6), json!(7), json!(8)),
            ("days_since_last_purchase", json!(29), json!(30), json!(31)),
            ("purchases_12m", json!(6), json!(7), json!(8)),
            ("spend_12m", usd(11_999), usd(12_000), usd(12_001)),
            ("redemptions_12m", json!(1), json!(2), json!(3)),
            ("balance", json!(499), json!(500), json!(501)),
            ("pending", json!(0), json!(0), json!(1)),
            ("lifetime_earned", json!(899), json!(900), json!(901)),
            ("expiring_30d", json!(99), json!(100), json!(101)),
            ("churn_probability", json!(0.24), json!(0.25), json!(0.26)),
            ("p_alive", json!(0.74), json!(0.75), json!(0.76)),
            ("expected_purchases", json!(1.49), json!(1.5), json!(1.51)),
            ("clv", usd(4_249), usd(4_250), usd(4_251)),
        ];
        for (field, below, at, above) in cases {
            let below_is_at = below == at;
            let above_is_at = above == at;
            let check = |op: &str, v: &Value, want: bool| {
                assert_eq!(
                    holds(cond(field, op, v.clone()), &m),
                    want,
                    "{field} {op} {v}"
                );
            };
            check("eq", &at, true);
            check("ne", &at, false);
            check("gte", &at, true);
            check("lte", &at, true);
            check("gt", &at, false);
            check("lt", &at, false);
            if !below_is_at {
                check("gt", &below, true);
                check("lt", &below, false);
                check("eq", &below, false);
                check("ne", &below, true);
            }
            if !above_is_at {
                check("lt", &above, true);
                check("gt", &above, false);
            }
            check("between", &json!([below, at]), true);
            check("between", &json!([at, above]), true);
            check("between", &json!([at, at]), true);
            if !above_is_at {
                check("between", &json!([above, above]), false);
            }
            check("in", &json!([at]), true);
            check("not_in", &json!([at]), false);
            if !below_is_at {
                check("in", &json!([below]), false);
                check("not_in", &json!([below]), true);
            }
            assert!(
                holds(json!({"field": field, "op": "exists"}), &m),
                "{field}"
            );
        }
    }

    #[test]
    fn words_texts_bools_and_sets_match_exactly() {
        let m = member();
        assert!(holds(cond("lifecycle", "eq", json!("active")), &m));
        assert!(holds(cond("lifecycle", "in", json!(["new", "active"])), &m));
        assert!(!holds(
            cond("lifecycle", "not_in", json!(["new", "active"])),
            &m
        ));
        assert!(holds(cond("value", "ne", json!("regular")), &m));
        assert!(holds(cond("timezone", "eq", json!("Asia/Shanghai")), &m));
        assert!(!holds(cond("timezone", "eq", json!("asia/shanghai")), &m));
        assert!(holds(
            cond("home_store", "in", json!(["store-1", "store-2"])),
            &m
        ));
        assert!(holds(cond("referred", "eq", json!(true)), &m));
        assert!(holds(cond("has_email", "eq", json!(false)), &m));
        assert!(holds(cond("has_phone", "ne", json!(false)), &m));
        assert!(holds(cond("tags", "contains", json!("vip")), &m));
        assert!(!holds(cond("tags", "contains", json!("VIP")), &m));
        assert!(holds(json!({"field": "tags", "op": "exists"}), &m));
        assert!(holds(
            cond("categories_bought_12m", "contains", json!("tea")),
            &m
        ));
        assert!(!holds(
            cond("categories_bought_12m", "contains", json!("coffee")),
            &m
        ));
        assert!(!holds(json!({"field": "in_campaign", "op": "exists"}), &m));
        let mut inc = m.clone();
        inc.campaigns.insert("spring".into());
        assert!(holds(
            cond("in_campaign", "contains", json!("spring")),
            &inc
        ));
        assert!(holds(json!({"field": "in_campaign", "op": "exists"}), &inc));
    }

    #[test]
    fn purchases_in_last_months_counts_this_month_and_the_ones_before() {
        let m = member();
        let n = |months: u32| {
            (0..=8)
                .find(|n| {
                    holds(
                        json!({"field": "purchases_in_last_months", "months": months,
                            "op": "eq", "value": n}),
                        &m,
                    )
                })
                .expect("some count")
        };
        // [1, 0, 2, 0, …, 4]: by hand.
        assert_eq!(n(1), 1);
        assert_eq!(n(2), 1);
        assert_eq!(n(3), 3);
        assert_eq!(n(11), 3);
        assert_eq!(n(12), 7);
    }

    #[test]
    fn a_missing_fact_satisfies_no_condition_but_its_negation() {
        let m = Facts::default();
        for (field, v) in [
            ("days_since_last_purchase", json!(5)),
            ("churn_probability", json!(0.5)),
            ("clv", json!({"value": 1, "currency": "USD"})),
            ("home_store", json!("s")),
            ("lifecycle", json!("new")),
        ] {
            for op in ["eq", "ne"] {
                assert!(!holds(cond(field, op, v.clone()), &m), "{field} {op}");
                assert!(
                    holds(json!({"not": cond(field, op, v.clone())}), &m),
                    "{field}"
                );
            }
            assert!(!holds(cond(field, "not_in", json!([v])), &m), "{field}");
            assert!(
                !holds(json!({"field": field, "op": "exists"}), &m),
                "{field}"
            );
        }
    }

    #[test]
    fn refusals_name_the_path_of_the_first_mistake() {
        let cases = [
            (
                json!({"all": [cond("tier", "eq", json!("gold")), cond("tier", "eq", json!("gold")),
                    {"any": [cond("balance", "gt", json!("many"))]}]}),
                "rule.all[2].any[0].value",
                "whole number",
            ),
            (
                json!({"all": [{"field": "nope", "op": "eq", "value": 1}]}),
                "rule.all[0].field",
                "unknown field",
            ),
            (
                json!({"any": [cond("tags", "gt", json!(1))]}),
                "rule.any[0].op",
                "tags takes the operators contains, exists",
            ),
            (
                json!({"not": cond("tier", "eq", json!("platinum"))}),
                "rule.not.value",
                "a tier",
            ),
            (json!({"all": []}), "rule.all", "at least one"),
            (json!({"all": {}}), "rule.all", "list"),
            (json!({"all": [], "any": []}), "rule", "no other member"),
            (json!([1]), "rule", "a rule is an object"),
            (
                cond("balance", "between", json!([5, 1])),
                "rule.value",
                "low ≤ high",
            ),
            (
                cond("balance", "between", json!([5])),
                "rule.value",
                "[low, high]",
            ),
            (
                cond("balance", "in", json!([])),
                "rule.value",
                "list of 1 to 100",
            ),
            (
                cond("balance", "eq", json!(-1)),
                "rule.value",
                "whole number 0",
            ),
            (cond("rfm.r", "eq", json!(6)), "rule.value", "1 to 5"),
            (cond("p_alive", "gt", json!(1.5)), "rule.value", "0 to 1"),
            (cond("spend_12m", "gt", json!(100)), "rule.value", "money"),
            (
                cond("spend_12m", "gt", json!({"value": 1, "currency": "EUR"})),
                "rule.value",
                "currency, USD",
            ),
            (
                cond("enrolled_on", "gt", json!("2026-13-01")),
                "rule.value",
                "YYYY-MM-DD",
            ),
            (
                cond("lifecycle", "eq", json!("sleepy")),
                "rule.value",
                "one of prospect",
            ),
            (
                cond("referred", "eq", json!("yes")),
                "rule.value",
                "true or false",
            ),
            (
                cond("tags", "contains", json!("")),
                "rule.value",
                "non-empty",
            ),
            (
                json!({"field": "tags", "op": "exists", "value": 1}),
                "rule.value",
                "no value",
            ),
            (
                json!({"field": "balance", "op": "eq"}),
                "rule.value",
                "needs a value",
            ),
            (
                json!({"field": "balance", "op": "eq", "value": 1, "x": 2}),
                "rule.x",
                "only field",
            ),
            (
                cond("purchases_in_last_months", "gt", json!(1)),
                "rule.months",
                "needs months",
            ),
            (
                json!({"field": "purchases_in_last_months", "months": 13, "op": "gt", "value": 1}),
                "rule.months",
                "1 to 12",
            ),
            (
                json!({"field": "balance", "months": 3, "op": "gt", "value": 1}),
                "rule.months",
                "only purchases",
            ),
            (
                json!({"op": "eq", "value": 1}),
                "rule.field",
                "names its field",
            ),
            (
                json!({"field": "balance", "value": 1}),
                "rule.op",
                "names its operator",
            ),
        ];
        for (rule, path, message) in cases {
            let (p, m) = refused(rule.clone());
            assert_eq!(p, path, "{rule}");
            assert!(m.contains(message), "{rule}: {m}");
        }
    }

    #[test]
    fn depth_and_size_are_bounded_exactly_at_the_limits() {
        let leaf = cond("balance", "gt", json!(1));
        let nest = |levels: usize| (0..levels).fold(leaf.clone(), |r, _| json!({"not": r}));
        assert!(parse(nest(MAX_DEPTH)).is_ok());
        let (p, m) = refused(nest(MAX_DEPTH + 1));
        assert_eq!(p, "rule.not.not.not.not");
        assert!(m.contains("4 groups deep"), "{m}");
        let many = |n: usize| json!({"all": vec![leaf.clone(); n]});
        assert!(parse(many(MAX_CONDITIONS)).is_ok());
        let (p, m) = refused(many(MAX_CONDITIONS + 1));
        assert_eq!(p, "rule");
        assert!(m.contains("at most 50 conditions; this one has 51"), "{m}");
    }

    #[test]
    fn every_field_takes_exactly_its_operators_and_round_trips() {
        for f in Field::ALL {
            assert_eq!(Field::parse(f.name()), Some(f));
            for op in Op::ALL {
                let r = json!({"field": f.name(), "op": op.name()});
                let e = parse(r).err();
                let refused_op = e.as_ref().is_some_and(|e| e.path == "rule.op");
                assert_eq!(
                    !refused_op,
                    f.ops().contains(&op),
                    "{} {}",
                    f.name(),
                    op.name()
                );
            }
        }
        let rule = json!({"all": [
            cond("tier", "gte", json!("gold")),
            {"any": [cond("spend_12m", "between", json!([{"value": 1, "currency": "USD"}, {"value": 9, "currency": "USD"}])),
                     {"not": cond("tags", "contains", json!("staff"))}]},
            {"field": "purchases_in_last_months", "months": 3, "op": "in", "value": [1, 2]},
            cond("enrolled_on", "lt", json!("2026-01-01")),
            cond("p_alive", "lt", json!(0.5)),
            {"field": "home_store", "op": "exists"},
        ]});
        let parsed = parse(rule.clone()).unwrap();
        assert_eq!(parsed.to_json(USD), rule);
        assert_eq!(parse(parsed.to_json(USD)).unwrap(), parsed);
    }

    // ---- the property: the logic of all/any/not, and evaluation equal to a reference that
    // compares each field by hand.

    fn arb_facts() -> impl Strategy<Value = Facts> {
        (
            0i64..5,
            proptest::option::of(0i64..5),
            proptest::collection::btree_set("[ab]", 0..3),
            any::<bool>(),
            proptest::option::of(0u8..=4),
        )
            .prop_map(|(balance, days, tags, referred, tier)| Facts {
                balance,
                days_since_last_purchase: days,
                tags,
                referred,
                tier: tier.map(|t| Tier::ALL[usize::from(t) % 3]),
                ..Facts::default()
            })
    }

    /// Leaves over four fields, as (json, reference).
    fn arb_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0usize..6, 0i64..5).prop_map(|(o, n)| cond(
                "balance",
                ["eq", "ne", "gt", "gte", "lt", "lte"][o],
                json!(n)
            )),
            (0i64..5, 0i64..5).prop_map(|(a, b)| cond(
                "days_since_last_purchase",
                "between",
                json!([a.min(b), a.max(b)])
            )),
            Just(json!({"field": "days_since_last_purchase", "op": "exists"})),
            "[ab]".prop_map(|t| cond("tags", "contains", json!(t))),
            any::<bool>().prop_map(|b| cond("referred", "eq", json!(b))),
            proptest::collection::vec(0usize..3, 1..3).prop_map(|ts| cond(
                "tier",
                "not_in",
                json!(
                    ts.iter()
                        .map(|t| Tier::ALL[*t].as_str())
                        .collect::<Vec<_>>()
                )
            )),
        ]
    }

    fn arb_rule() -> impl Strategy<Value = Value> {
        arb_leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..4).prop_map(|rs| json!({"all": rs})),
                proptest::collection::vec(inner.clone(), 1..4).prop_map(|rs| json!({"any": rs})),
                inner.prop_map(|r| json!({"not": r})),
            ]
        })
    }

    /// The reference: reads the JSON itself and compares by hand.
    fn reference(r: &Value, f: &Facts) -> bool {
        if let Some(rs) = r.get("all").and_then(Value::as_array) {
            return rs.iter().all(|r| reference(r, f));
        }
        if let Some(rs) = r.get("any").and_then(Value::as_array) {
            return rs.iter().any(|r| reference(r, f));
        }
        if let Some(r) = r.get("not") {
            return !reference(r, f);
        }
        let v = &r["value"];
        match (r["field"].as_str().unwrap(), r["op"].as_str().unwrap()) {
            ("balance", op) => {
                let (b, n) = (f.balance, v.as_i64().unwrap());
                match op {
                    "eq" => b == n,
                    "ne" => b != n,
                    "gt" => b > n,
                    "gte" => b >= n,
                    "lt" => b < n,
                    _ => b <= n,
                }
            }
            ("days_since_last_purchase", "exists") => f.days_since_last_purchase.is_some(),
            ("days_since_last_purchase", _) => f
                .days_since_last_purchase
                .is_some_and(|d| v[0].as_i64().unwrap() <= d && d <= v[1].as_i64().unwrap()),
            ("tags", _) => f.tags.contains(v.as_str().unwrap()),
            ("referred", _) => f.referred == v.as_bool().unwrap(),
            ("tier", _) => f.tier.is_some_and(|t| {
                !v.as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x.as_str() == Some(t.as_str()))
            }),
            other => panic!("no reference for {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn evaluation_equals_the_reference_and_obeys_the_logic_of_all_any_not(
            r in arb_rule(), s in arb_rule(), f in arb_facts()
        ) {
            let (pr, ps) = (parse(r.clone()).unwrap(), parse(s.clone()).unwrap());
            prop_assert_eq!(pr.holds(&f), reference(&r, &f));
            prop_assert_eq!(Rule::Not(Box::new(pr.clone())).holds(&f), !pr.holds(&f));
            let both = Rule::All(vec![pr.clone(), ps.clone()]).holds(&f);
            let either = Rule::Any(vec![pr.clone(), ps.clone()]).holds(&f);
            prop_assert_eq!(both, pr.holds(&f) && ps.holds(&f));
            prop_assert_eq!(either, pr.holds(&f) || ps.holds(&f));
            // De Morgan.
            let not_both = Rule::Not(Box::new(Rule::All(vec![pr.clone(), ps.clone()])));
            let any_not = Rule::Any(vec![Rule::Not(Box::new(pr.clone())), Rule::Not(Box::new(ps))]);
            prop_assert_eq!(not_both.holds(&f), any_not.holds(&f));
            prop_assert_eq!(parse(pr.to_json(USD)).unwrap(), pr);
        }
    }
}
