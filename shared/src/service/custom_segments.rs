//! Custom segments (DESIGN.md "Custom segments"): definitions (admin, audited), members' tags,
//! the evaluation of members against the rules in force (by the nightly run and by the builds a
//! new or changed rule starts), and the reads — a definition with its size and the time of its
//! last evaluation, its listing, and a member's custom segments evaluated live.

use super::Ctx;
use super::audit::Audited;
use super::campaigns::Campaigns;
use super::error::{ServiceError, live};
use crate::domain::MemberId;
use crate::domain::audit::{Actor, AuditAction, Change};
use crate::domain::custom_segment::{
    Defining, Definition, MAX_DEFINITIONS, Refused, Registry, Slug, define, moves, numbers_in_use,
};
use crate::domain::member::Member;
use crate::domain::predict::score::Model;
use crate::domain::rule::{Facts, Field, Rule};
use crate::domain::segment::RunId;
use crate::domain::spend::month_index;
use crate::domain::traits::{MAX_TAGS, MemberTraits, Tag};
use crate::retrying;
use crate::table::{Batch, CurrentRun, EvaluationPart, Reads, Versioned};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;

#[derive(Clone)]
pub struct CustomSegments {
    pub(crate) ctx: Ctx,
    pub(crate) campaigns: Campaigns,
}

/// Members evaluated at once within a page.
const CONCURRENCY: usize = 16;
/// An evaluation run's part records expire after this many days.
const PART_RETENTION_DAYS: i64 = 7;

/// `PUT /v1/segments/custom:{slug}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Gold tea lovers likely to churn",
    "description": "Gold and above who bought tea this year and may leave",
    "rule": {"all": [{"field": "tier", "op": "gte", "value": "gold"},
        {"field": "categories_bought_12m", "op": "contains", "value": "tea"},
        {"field": "churn_probability", "op": "gte", "value": 0.5}]}}))]
pub struct DefinitionRequest {
    pub name: String,
    pub description: Option<String>,
    /// `{"all": [...]}`, `{"any": [...]}`, `{"not": …}` or a condition `{"field", "op",
    /// "value"}` (API.md "Custom segments" lists the fields and operators).
    #[schema(value_type = Object)]
    pub rule: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    /// The rule in force is being evaluated over every member; the listing (if any) is the
    /// previous rule's, as of `evaluated_at`.
    Building,
    Ready,
}

/// How far the evaluation of a rule being built has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BuildProgress {
    pub parts_done: u32,
    pub parts: u32,
    pub members_examined: u64,
}

/// A custom segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "custom:gold-tea", "name": "Gold tea lovers", "description": null,
    "rule": {"all": [{"field": "tier", "op": "gte", "value": "gold"}]}, "status": "ready",
    "size": 1204, "evaluated_at": "2027-03-02T02:00:00Z", "progress": null,
    "created_at": "2027-03-01T09:30:00Z", "updated_at": "2027-03-01T09:30:00Z"}))]
pub struct CustomSegmentView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub rule: Value,
    pub status: BuildStatus,
    /// The members its listing returns (of the last complete evaluation); null before the first.
    pub size: Option<u64>,
    /// When the evaluation the listing is of started; null before the first.
    pub evaluated_at: Option<DateTime<Utc>>,
    /// While `building`: the evaluation run's progress, once it has started.
    pub progress: Option<BuildProgress>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CustomSegmentList {
    pub items: Vec<CustomSegmentView>,
}

/// `PUT /v1/members/{id}/tags`: the member's whole set of tags.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tags": ["vip", "wechat-group-7"]}))]
pub struct TagsRequest {
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"member_id": "member-ada", "tags": ["vip", "wechat-group-7"]}))]
pub struct MemberTags {
    pub member_id: MemberId,
    pub tags: Vec<String>,
}

/// A page of a custom segment's listing: its members and when the evaluation it is of started.
#[derive(Debug, Default)]
pub struct CustomListing {
    pub members: Vec<Member>,
    pub next_cursor: Option<String>,
    pub evaluated_at: Option<DateTime<Utc>>,
}

/// What one evaluation run's part (or the nightly run's) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvaluationTally {
    pub examined: u64,
    pub changed: u64,
    pub failed: u64,
}

impl EvaluationTally {
    pub fn add(&mut self, o: EvaluationTally) {
        self.examined += o.examined;
        self.changed += o.changed;
        self.failed += o.failed;
    }
}

impl Ctx {
    /// A redemption made (`delta` 1) or cancelled (−1), `made_at`, on the member's traits, in
    /// the write's batch.
    pub(crate) fn note_redemption(
        &self,
        batch: &mut Batch,
        member: &MemberId,
        prior: Option<Versioned<MemberTraits>>,
        (made_at, delta): (DateTime<Utc>, i64),
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let mut t = prior.as_ref().map(|v| v.value.clone()).unwrap_or_default();
        let today = self.program_date(now);
        t.note_redemption(self.program_date(made_at), delta, today);
        batch.save(member, &t, prior.map(|v| v.version))?;
        Ok(())
    }
}

/// Listing items moved in one commit at most: with the traits and the size add, a commit stays
/// under DynamoDB's 100 items a transaction however many rules a member enters at once.
const MOVES_PER_COMMIT: usize = 90;

impl Ctx {
    /// Commits a member's moves, at most [`MOVES_PER_COMMIT`] a commit, each with the traits
    /// listing exactly what it has written so far (a lost race in between reads again).
    pub(crate) async fn apply_moves(
        &self,
        id: &MemberId,
        mut t: MemberTraits,
        mut version: Option<u64>,
        mut mv: crate::domain::custom_segment::Moves,
    ) -> Result<bool, ServiceError> {
        let mut changed = false;
        while !mv.is_empty() {
            let leave: BTreeSet<u32> = mv.leave.iter().copied().take(MOVES_PER_COMMIT).collect();
            let room = MOVES_PER_COMMIT - leave.len();
            let enter: BTreeSet<u32> = mv.enter.iter().copied().take(room).collect();
            mv.leave.retain(|n| !leave.contains(n));
            mv.enter.retain(|n| !enter.contains(n));
            t.listed.extend(&enter);
            t.listed.retain(|n| !leave.contains(n));
            let mut batch = Batch::new();
            batch.save(id, &t, version)?;
            batch.move_listings(id, &enter, &leave)?;
            self.table.commit(batch).await?;
            version = Some(version.map_or(1, |v| v + 1));
            changed = true;
        }
        Ok(changed)
    }

    /// Takes a member out of every custom listing (before an erasure), in as many commits as
    /// it takes.
    pub(crate) async fn unlist(&self, id: &MemberId) -> Result<(), ServiceError> {
        let Some(v) = self.table.get::<MemberTraits>(id).await? else {
            return Ok(());
        };
        let mv = crate::domain::custom_segment::Moves {
            enter: BTreeSet::new(),
            leave: v.value.listed.clone(),
        };
        self.apply_moves(id, v.value, Some(v.version), mv)
            .await
            .map(|_| ())
    }
}

/// The rules in force, parsed once per run.
#[derive(Clone, Debug, Default)]
pub struct Evaluator {
    rules: Vec<(u32, Rule)>,
    in_use: BTreeSet<u32>,
    campaigns: bool,
}

impl Evaluator {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.in_use.is_empty()
    }
    pub fn numbers(&self) -> BTreeSet<u32> {
        self.rules.iter().map(|(n, _)| *n).collect()
    }
}

impl CustomSegments {
    // ---- definitions

    /// Defines or changes `custom:{slug}`: 201 when created. A changed rule is built anew; the
    /// listing of the previous rule is served until the build is done.
    #[tracing::instrument(skip_all, fields(%slug))]
    pub async fn define(
        &self,
        slug: &Slug,
        req: DefinitionRequest,
        actor: &Actor,
    ) -> Result<(CustomSegmentView, bool), ServiceError> {
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ServiceError::field(
                "name",
                "name must be 1 to 100 characters",
            ));
        }
        if req
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 500)
        {
            return Err(ServiceError::field(
                "description",
                "description must be at most 500 characters",
            ));
        }
        let currency = self.ctx.program.currency;
        let rule = Rule::parse(&req.rule, "rule", currency)
            .map_err(|e| ServiceError::field(&e.path, e.message))?;
        let defining = || Defining {
            slug,
            name,
            description: req.description.as_deref(),
            rule: rule.to_json(currency),
        };
        let (def, created) = retrying!(self.ctx, self.try_define(defining(), actor))?;
        Ok((self.view(def).await?, created))
    }

    async fn try_define(
        &self,
        req: Defining<'_>,
        actor: &Actor,
    ) -> Result<(Definition, bool), ServiceError> {
        let now = self.ctx.now();
        let mut reads = Reads::new();
        let reg = reads.add::<Registry>(&());
        let prior = reads.add::<Definition>(req.slug);
        let found = self.ctx.table.read(&reads).await?;
        let (reg, prior) = (found.get(&reg)?, found.get(&prior)?);
        let registry = reg.as_ref().map(|v| v.value.clone()).unwrap_or_default();
        let slug = req.slug.clone();
        let (def, next, created) = define(prior.as_ref().map(|p| &p.value), &registry, req, now)
            .map_err(|Refused::TooMany| ServiceError::TooManySegments {
                max: MAX_DEFINITIONS,
            })?;
        let mut batch = Batch::new();
        batch.save(&(), &next, reg.map(|v| v.version))?;
        batch.save(&slug, &def, prior.as_ref().map(|p| p.version))?;
        let audited = Audited {
            action: AuditAction::SegmentDefined,
            member: None,
            target: Some(slug.to_string()),
            changes: vec![
                Change::to("name", def.name.clone()),
                Change::to("rule", def.rule.clone()),
            ],
        };
        self.ctx.audit(&mut batch, Some(actor), audited, now)?;
        self.ctx.table.commit(batch).await?;
        Ok((def, created))
    }

    /// Deletes a definition. Its listings go with the next evaluation; a campaign launched on it
    /// keeps the audience it launched with.
    #[tracing::instrument(skip_all, fields(%slug))]
    pub async fn delete(&self, slug: &Slug, actor: &Actor) -> Result<(), ServiceError> {
        retrying!(self.ctx, self.try_delete(slug, actor))
    }

    async fn try_delete(&self, slug: &Slug, actor: &Actor) -> Result<(), ServiceError> {
        let now = self.ctx.now();
        let mut reads = Reads::new();
        let reg = reads.add::<Registry>(&());
        let def = reads.add::<Definition>(slug);
        let found = self.ctx.table.read(&reads).await?;
        let def = found
            .get(&def)?
            .ok_or(ServiceError::NotFound("custom segment"))?;
        let reg = found.get(&reg)?;
        let mut next = reg.as_ref().map(|v| v.value.clone()).unwrap_or_default();
        next.slugs.remove(slug);
        let mut batch = Batch::new();
        batch.save(&(), &next, reg.map(|v| v.version))?;
        batch.delete::<Definition>(slug, def.version);
        let audited = Audited {
            action: AuditAction::SegmentDeleted,
            member: None,
            target: Some(slug.to_string()),
            changes: vec![Change::new("rule", def.value.rule, Value::Null)],
        };
        self.ctx.audit(&mut batch, Some(actor), audited, now)?;
        self.ctx.table.commit(batch).await
    }

    /// One definition with its size and state.
    pub async fn definition(&self, slug: &Slug) -> Result<CustomSegmentView, ServiceError> {
        let def = self
            .ctx
            .table
            .get::<Definition>(slug)
            .await?
            .ok_or(ServiceError::NotFound("custom segment"))?;
        self.view(def.value).await
    }

    /// Every definition with its size (for `GET /v1/segments`).
    pub async fn list(&self) -> Result<Vec<CustomSegmentView>, ServiceError> {
        let defs = self.ctx.table.definitions().await?;
        let listed: BTreeSet<u32> = defs.iter().filter_map(|d| d.listed).collect();
        let sizes = self.ctx.table.custom_sizes(&listed).await?;
        let progress = self.progress(&defs).await?;
        Ok(defs
            .into_iter()
            .map(|d| view_of(d, &sizes, progress.clone()))
            .collect())
    }

    async fn view(&self, def: Definition) -> Result<CustomSegmentView, ServiceError> {
        let listed: BTreeSet<u32> = def.listed.into_iter().collect();
        let sizes = self.ctx.table.custom_sizes(&listed).await?;
        let progress = self.progress(std::slice::from_ref(&def)).await?;
        Ok(view_of(def, &sizes, progress))
    }

    /// The progress of the newest evaluation run and when it started, when some definition is
    /// building.
    async fn progress(&self, defs: &[Definition]) -> Result<Option<Progress>, ServiceError> {
        if !defs.iter().any(Definition::building) {
            return Ok(None);
        }
        let Some(run) = self.ctx.table.get::<CurrentRun>(&()).await? else {
            return Ok(None);
        };
        let parts = self.ctx.table.evaluation_parts(&run.value.run).await?;
        Ok(Some((
            run.value.started_at,
            BuildProgress {
                parts_done: parts.len() as u32,
                parts: run.value.parts,
                members_examined: parts.iter().map(|p| p.examined).sum(),
            },
        )))
    }

    /// A page of the members listed in `custom:{slug}` as of its last evaluation.
    pub async fn members(
        &self,
        slug: &Slug,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<CustomListing, ServiceError> {
        let def = self
            .ctx
            .table
            .get::<Definition>(slug)
            .await?
            .ok_or(ServiceError::NotFound("custom segment"))?
            .value;
        let Some(n) = def.listed else {
            return Ok(CustomListing::default());
        };
        let (ids, next) = self.ctx.table.listing_page(n, limit, cursor).await?;
        let mut reads = Reads::new();
        let slots: Vec<_> = ids.iter().map(|id| reads.add::<Member>(id)).collect();
        let found = self.ctx.table.read(&reads).await?;
        let mut members = Vec::with_capacity(ids.len());
        for s in &slots {
            // A member erased since the evaluation is listed until the next one, but shown
            // nowhere.
            if let Some(m) = found.get(s)?.filter(|m| m.value.erased_at.is_none()) {
                members.push(m.value);
            }
        }
        Ok(CustomListing {
            members,
            next_cursor: next,
            evaluated_at: def.evaluated_at,
        })
    }

    // ---- tags

    /// Replaces the member's tags (admin, support; audited).
    #[tracing::instrument(skip_all, fields(member = %id))]
    pub async fn set_tags(
        &self,
        id: &MemberId,
        req: TagsRequest,
        actor: &Actor,
    ) -> Result<MemberTags, ServiceError> {
        if req.tags.len() > MAX_TAGS {
            return Err(ServiceError::field(
                "tags",
                format!("at most {MAX_TAGS} tags on a member"),
            ));
        }
        let tags = req
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Tag::parse(t).map_err(|e| ServiceError::invalid(&format!("tags[{i}]"), e))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        retrying!(self.ctx, self.try_set_tags(id, &tags, actor))
    }

    async fn try_set_tags(
        &self,
        id: &MemberId,
        tags: &BTreeSet<Tag>,
        actor: &Actor,
    ) -> Result<MemberTags, ServiceError> {
        let now = self.ctx.now();
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let traits = reads.add::<MemberTraits>(id);
        let found = self.ctx.table.read(&reads).await?;
        let m = live(found.get(&member)?)?;
        let prior = found.get(&traits)?;
        let mut t = prior.as_ref().map(|p| p.value.clone()).unwrap_or_default();
        let before: Vec<String> = t.tags.iter().map(|t| t.to_string()).collect();
        t.tags = tags.clone();
        let after: Vec<String> = t.tags.iter().map(|t| t.to_string()).collect();
        let mut batch = Batch::new();
        // The member's version too: an erasure in between must not leave tags behind.
        batch.check::<Member>(id, m.version);
        batch.save(id, &t, prior.map(|p| p.version))?;
        let audited = Audited {
            action: AuditAction::MemberTagged,
            member: Some(id),
            target: None,
            changes: vec![Change::new("tags", before, after.clone())],
        };
        self.ctx.audit(&mut batch, Some(actor), audited, now)?;
        self.ctx.table.commit(batch).await?;
        Ok(MemberTags {
            member_id: id.clone(),
            tags: after,
        })
    }

    /// The member's tags.
    pub async fn tags(&self, id: &MemberId) -> Result<MemberTags, ServiceError> {
        let mut reads = Reads::new();
        let member = reads.add::<Member>(id);
        let traits = reads.add::<MemberTraits>(id);
        let found = self.ctx.table.read(&reads).await?;
        live(found.get(&member)?)?;
        let t = found.get(&traits)?.map(|v| v.value).unwrap_or_default();
        Ok(MemberTags {
            member_id: id.clone(),
            tags: t.tags.iter().map(|t| t.to_string()).collect(),
        })
    }

    // ---- evaluation

    /// The rules in force now.
    pub async fn evaluator(&self) -> Result<Evaluator, ServiceError> {
        let defs = self.ctx.table.definitions().await?;
        self.evaluator_of(&defs)
    }

    fn evaluator_of(&self, defs: &[Definition]) -> Result<Evaluator, ServiceError> {
        let currency = self.ctx.program.currency;
        let rules = defs
            .iter()
            .map(|d| {
                Rule::parse(&d.rule, "rule", currency)
                    .map(|r| (d.number, r))
                    .map_err(|e| {
                        ServiceError::corrupt(format!(
                            "{} has a stored rule that does not parse: {} {}",
                            d.slug, e.path, e.message
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let campaigns = rules
            .iter()
            .any(|(_, r)| r.fields().contains(&Field::InCampaign));
        Ok(Evaluator {
            rules,
            in_use: numbers_in_use(defs),
            campaigns,
        })
    }

    /// The running campaigns the member is in the treatment of, when a rule asks (`wanted`).
    async fn treatment_campaigns(
        &self,
        id: &MemberId,
        wanted: bool,
    ) -> Result<BTreeSet<String>, ServiceError> {
        if !wanted {
            return Ok(BTreeSet::new());
        }
        let offers = self.campaigns.offers_of(id).await?;
        Ok(offers
            .items
            .into_iter()
            .map(|o| o.campaign_id.to_string())
            .collect())
    }

    /// What rules can ask of one member now.
    pub(crate) async fn facts(
        &self,
        m: &Member,
        t: &MemberTraits,
        model: Option<&Model>,
        campaigns: bool,
        now: DateTime<Utc>,
    ) -> Result<Facts, ServiceError> {
        let ctx = &self.ctx;
        let today = ctx.program_date(now);
        let lots = ctx.settled_lots(m, now);
        let scores = m.scores(model, today);
        let this_month = month_index(today);
        let mut by_month = [0i64; 12];
        for (i, n) in by_month.iter_mut().enumerate() {
            *n = m.purchases.in_month(this_month - i as i32);
        }
        let campaigns = self.treatment_campaigns(&m.id, campaigns).await?;
        Ok(Facts {
            tier: Some(m.tier),
            lifecycle: m.segments.map(|s| s.lifecycle),
            value: m.segments.and_then(|s| s.value),
            rfm: m.segments.and_then(|s| s.rfm).map(|r| [r.r, r.f, r.m]),
            enrolled_on: Some(ctx.program_date(m.enrolled_at)),
            birthday_month: m.birthday.map(|b| b.month()),
            timezone: m.timezone.map(|z| z.0.name().to_owned()),
            home_store: t.home_store(today),
            tags: t.tags.iter().map(|t| t.to_string()).collect(),
            referred: m.referral.is_some(),
            has_email: m.email.is_some(),
            has_phone: m.phone.is_some(),
            days_since_last_purchase: m
                .last_purchase_at
                .map(|at| (today - ctx.program_date(at)).num_days().max(0)),
            purchases_by_month: by_month,
            spend_12m: m.spend.qualifying(today, 12),
            categories_12m: t.categories_12m(today),
            redemptions_12m: t.redemptions_12m(today),
            balance: lots.spendable(),
            pending: lots.pending_total(),
            lifetime_earned: m.lifetime_earned.0,
            expiring_30d: ctx
                .expiring(m, &lots, now, 30)
                .iter()
                .map(|e| e.points.0)
                .sum(),
            churn_probability: scores.map(|s| s.churn_probability),
            p_alive: scores.map(|s| s.p_alive),
            expected_purchases: scores.map(|s| s.expected_purchases),
            clv: scores.and_then(|s| s.clv),
            campaigns,
        })
    }

    /// The custom segments a member is in now, evaluated live (operators' member view).
    pub async fn member_segments(
        &self,
        m: &Member,
        model: Option<&Model>,
    ) -> Result<Vec<String>, ServiceError> {
        let defs = self.ctx.table.definitions().await?;
        if defs.is_empty() {
            return Ok(Vec::new());
        }
        let ev = self.evaluator_of(&defs)?;
        let t = self
            .ctx
            .table
            .get::<MemberTraits>(&m.id)
            .await?
            .map(|v| v.value)
            .unwrap_or_default();
        let facts = self
            .facts(m, &t, model, ev.campaigns, self.ctx.now())
            .await?;
        Ok(defs
            .iter()
            .zip(&ev.rules)
            .filter(|(_, (_, r))| r.holds(&facts))
            .map(|(d, _)| d.slug.to_string())
            .collect())
    }

    /// Evaluates a page of members (as they stand) against the rules in force: their traits
    /// in one batch read, then each member's moves in its own commit.
    pub(crate) async fn evaluate_members(
        &self,
        members: Vec<Member>,
        ev: &Evaluator,
        model: Option<&Model>,
        now: DateTime<Utc>,
    ) -> Result<EvaluationTally, ServiceError> {
        let mut tally = EvaluationTally::default();
        if members.is_empty() || ev.is_empty() {
            return Ok(tally);
        }
        let mut reads = Reads::new();
        let slots: Vec<_> = members
            .iter()
            .map(|m| reads.add::<MemberTraits>(&m.id))
            .collect();
        let found = self.ctx.table.read(&reads).await?;
        let mut pairs = Vec::with_capacity(members.len());
        for (m, s) in members.into_iter().zip(&slots) {
            pairs.push((m, found.get(s)?));
        }
        let results = futures::stream::iter(pairs.into_iter().map(|(m, t)| async move {
            let id = m.id.clone();
            let mut first = Some((m, t));
            let r: Result<bool, ServiceError> = async {
                retrying!(
                    self.ctx,
                    self.evaluate_one(&id, first.take(), ev, model, now)
                )
            }
            .await;
            (id, r)
        }))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
        for (id, r) in results {
            tally.examined += 1;
            match r {
                Ok(changed) => tally.changed += u64::from(changed),
                Err(e) => {
                    tally.failed += 1;
                    tracing::error!(member = %id, error = %e, "custom segments: member failed");
                }
            }
        }
        Ok(tally)
    }

    /// One member: the page's copies first, fresh reads after a lost race.
    async fn evaluate_one(
        &self,
        id: &MemberId,
        first: Option<(Member, Option<Versioned<MemberTraits>>)>,
        ev: &Evaluator,
        model: Option<&Model>,
        now: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let (m, traits) = match first {
            Some(read) => read,
            None => {
                let mut reads = Reads::new();
                let member = reads.add::<Member>(id);
                let traits = reads.add::<MemberTraits>(id);
                let found = self.ctx.table.read(&reads).await?;
                let Some(m) = found.get(&member)? else {
                    return Ok(false);
                };
                (m.value, found.get(&traits)?)
            }
        };
        let t = traits.as_ref().map(|v| v.value.clone()).unwrap_or_default();
        let evaluated: BTreeMap<u32, bool> = if m.erased_at.is_some() {
            ev.rules.iter().map(|(n, _)| (*n, false)).collect()
        } else {
            let facts = self.facts(&m, &t, model, ev.campaigns, now).await?;
            ev.rules
                .iter()
                .map(|(n, r)| (*n, r.holds(&facts)))
                .collect()
        };
        let in_use = if m.erased_at.is_some() {
            BTreeSet::new()
        } else {
            ev.in_use.clone()
        };
        let mv = moves(&t.listed, &evaluated, &in_use);
        let version = traits.map(|v| v.version);
        self.ctx.apply_moves(id, t, version, mv).await
    }

    /// Records what a part of run `run` evaluated (the rules in `ev`, over its members).
    pub(crate) async fn part_done(
        &self,
        run: &RunId,
        (part, parts): (u32, u32),
        ev: &Evaluator,
        tally: EvaluationTally,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let mut batch = Batch::new();
        let expires_at = (now + chrono::Duration::days(PART_RETENTION_DAYS)).timestamp();
        batch.put(
            &(run.clone(), part),
            &EvaluationPart {
                numbers: ev.numbers(),
                examined: tally.examined,
                changed: tally.changed,
                failed: tally.failed,
                expires_at,
            },
        )?;
        batch.put(
            &(),
            &CurrentRun {
                run: run.clone(),
                parts,
                started_at: now,
            },
        )?;
        self.ctx.table.commit(batch).await
    }

    /// After every part of run `run` (started `now`): each rule every part evaluated is listed,
    /// as of `now`.
    pub(crate) async fn finish(
        &self,
        run: &RunId,
        parts: u32,
        now: DateTime<Utc>,
    ) -> Result<u32, ServiceError> {
        let done = self.ctx.table.evaluation_parts(run).await?;
        // A build run whose parts found nothing to build (or not all of them did) lists
        // nothing: its rules wait for a run that covers every member.
        if done.len() != parts as usize {
            return Ok(0);
        }
        let covered = done
            .iter()
            .map(|p| p.numbers.clone())
            .reduce(|a, b| a.intersection(&b).copied().collect())
            .unwrap_or_default();
        let mut listed = 0;
        for def in self.ctx.table.definitions().await? {
            if covered.contains(&def.number) {
                retrying!(self.ctx, self.try_list(&def.slug, def.number, now))?;
                listed += 1;
            }
        }
        Ok(listed)
    }

    async fn try_list(
        &self,
        slug: &Slug,
        number: u32,
        at: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let Some(v) = self.ctx.table.get::<Definition>(slug).await? else {
            return Ok(());
        };
        let mut d = v.value;
        // Changed since: its new rule waits for an evaluation of its own. Listed already by a
        // run that started later: that listing stands.
        let later = d.listed == Some(number) && d.evaluated_at.is_some_and(|e| e >= at);
        if d.number != number || later {
            return Ok(());
        }
        d.listed = Some(number);
        d.evaluated_at = Some(at);
        let mut batch = Batch::new();
        batch.save(slug, &d, Some(v.version))?;
        self.ctx.table.commit(batch).await
    }

    /// Whether any definition waits for its build.
    pub async fn building(&self) -> Result<bool, ServiceError> {
        Ok(self
            .ctx
            .table
            .definitions()
            .await?
            .iter()
            .any(Definition::building))
    }
}

/// A run's start and progress.
type Progress = (DateTime<Utc>, BuildProgress);

fn view_of(
    d: Definition,
    sizes: &BTreeMap<u32, u64>,
    progress: Option<Progress>,
) -> CustomSegmentView {
    let building = d.building();
    // Only a run that started after the rule was given can be building it.
    let progress = progress
        .filter(|(started, _)| *started >= d.numbered_at)
        .map(|(_, p)| p);
    CustomSegmentView {
        id: d.slug.to_string(),
        size: d.listed.map(|n| sizes.get(&n).copied().unwrap_or(0)),
        status: if building {
            BuildStatus::Building
        } else {
            BuildStatus::Ready
        },
        progress: if building { progress } else { None },
        name: d.name,
        description: d.description,
        rule: d.rule,
        evaluated_at: d.evaluated_at,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}
