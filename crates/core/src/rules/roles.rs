//! Roles rules R1–R11: which primary role and permission a user ends up
//! with, given what it has and what the IdP sent.

use std::fmt;

use serde_json::{json, Value};

use crate::scim::patch::RolesEffect;
use crate::scim::ScimError;

/// R1 primary roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrimaryRole {
    Recorder,
    RecorderAndVoice,
    Analyst,
    Listener,
}

/// R1 permissions; `User` means no elevated permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    User,
    Manager,
    Admin,
}

impl PrimaryRole {
    pub const ALL: [PrimaryRole; 4] = [
        PrimaryRole::Recorder,
        PrimaryRole::RecorderAndVoice,
        PrimaryRole::Analyst,
        PrimaryRole::Listener,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PrimaryRole::Recorder => "recorder",
            PrimaryRole::RecorderAndVoice => "recorder_and_voice",
            PrimaryRole::Analyst => "analyst",
            PrimaryRole::Listener => "listener",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
    /// The plan feature a role needs (T4), if any.
    pub fn required_feature(self) -> Option<Feature> {
        match self {
            PrimaryRole::RecorderAndVoice => Some(Feature::Voice),
            PrimaryRole::Listener => Some(Feature::Listener),
            _ => None,
        }
    }
}

impl Permission {
    pub const ALL: [Permission; 3] = [Permission::User, Permission::Manager, Permission::Admin];
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::User => "user",
            Permission::Manager => "manager",
            Permission::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
    fn is_elevated(self) -> bool {
        self != Permission::User
    }
}

/// Plan features (T4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Voice,
    Listener,
}

impl Feature {
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Voice => "voice",
            Feature::Listener => "listener",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "voice" => Some(Feature::Voice),
            "listener" => Some(Feature::Listener),
            _ => None,
        }
    }
}

/// The features a tenant's plan has. Both off unless set (T4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanFeatures {
    pub voice: bool,
    pub listener: bool,
}

impl PlanFeatures {
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        let mut plan = PlanFeatures::default();
        for n in names {
            match Feature::parse(n.as_ref()) {
                Some(Feature::Voice) => plan.voice = true,
                Some(Feature::Listener) => plan.listener = true,
                None => {}
            }
        }
        plan
    }
    pub fn has(self, f: Feature) -> bool {
        match f {
            Feature::Voice => self.voice,
            Feature::Listener => self.listener,
        }
    }
    /// The primary roles this plan allows, for /Schemas.
    pub fn allowed_primary_roles(self) -> Vec<PrimaryRole> {
        PrimaryRole::ALL
            .into_iter()
            .filter(|r| r.required_feature().is_none_or(|f| self.has(f)))
            .collect()
    }
}

/// What a user holds: exactly one primary role and one permission (R1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub primary: PrimaryRole,
    pub permission: Permission,
}

impl Roles {
    /// R3: what a new user gets when nothing usable was sent.
    pub const DEFAULT: Roles = Roles {
        primary: PrimaryRole::Analyst,
        permission: Permission::User,
    };

    /// R11: the applied roles as SCIM values; PUT of this changes nothing.
    pub fn to_scim(self) -> Value {
        json!([
            {"value": self.primary.as_str(), "primary": true},
            {"value": self.permission.as_str()}
        ])
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.primary.as_str(), self.permission.as_str())
    }
}

/// One value of the `roles` attribute as sent (R2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleValue {
    pub value: String,
    pub primary: bool,
}

impl RoleValue {
    pub fn new(value: &str, primary: bool) -> Self {
        RoleValue {
            value: value.to_string(),
            primary,
        }
    }
}

/// Why a roles request was refused. Each names its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleViolation {
    #[error("{role} needs the {feature} plan feature (rule R9)", role = .role.as_str(), feature = .feature.as_str())]
    PlanLacksFeature { role: PrimaryRole, feature: Feature },
    #[error("conflicting primary roles {0}: mark exactly one with primary=true (rule R8)")]
    ConflictingPrimaryRoles(String),
    #[error("conflicting permissions {0}: mark exactly one with primary=true (rule R8)")]
    ConflictingPermissions(String),
    #[error("roles value has an unsupported shape: {0} (rule R2)")]
    BadShape(String),
}

impl From<RoleViolation> for ScimError {
    fn from(v: RoleViolation) -> Self {
        ScimError::invalid_value(v.to_string())
    }
}

/// Read the `roles` attribute in either accepted shape (R2): an array of
/// objects with `value`, or an array of strings. A single object or string
/// is accepted too, as PATCH with a value-filter path sends it. `null`
/// means no values.
pub fn parse_role_values(v: &Value) -> Result<Vec<RoleValue>, RoleViolation> {
    fn one(item: &Value) -> Result<Option<RoleValue>, RoleViolation> {
        match item {
            Value::String(s) => Ok(Some(RoleValue::new(s, false))),
            Value::Object(o) => {
                let value = match o.iter().find(|(k, _)| k.eq_ignore_ascii_case("value")) {
                    Some((_, Value::String(s))) => s.clone(),
                    Some((_, Value::Null)) | None => return Ok(None),
                    Some((_, other)) => {
                        return Err(RoleViolation::BadShape(format!(
                            "value {other} is not a string"
                        )))
                    }
                };
                let primary = match o.iter().find(|(k, _)| k.eq_ignore_ascii_case("primary")) {
                    Some((_, Value::Bool(b))) => *b,
                    Some((_, Value::String(s))) => s.trim().eq_ignore_ascii_case("true"),
                    _ => false,
                };
                Ok(Some(RoleValue { value, primary }))
            }
            Value::Null => Ok(None),
            other => Err(RoleViolation::BadShape(format!(
                "{other} is neither an object nor a string"
            ))),
        }
    }
    match v {
        Value::Array(items) => items.iter().filter_map(|i| one(i).transpose()).collect(),
        other => Ok(one(other)?.into_iter().collect()),
    }
}

/// Apply a roles request (R2–R9) to `current` (`None` for a new user).
pub fn apply_roles(
    current: Option<Roles>,
    sent: &[RoleValue],
    plan: PlanFeatures,
) -> Result<Roles, RoleViolation> {
    // R2: case-insensitive after trimming; R7: unrecognised values ignored.
    // Duplicates of one value merge; primary=true on any copy counts.
    let mut primaries: Vec<(PrimaryRole, bool)> = Vec::new();
    let mut permissions: Vec<(Permission, bool)> = Vec::new();
    for rv in sent {
        let norm = rv.value.trim().to_ascii_lowercase();
        if let Some(role) = PrimaryRole::parse(&norm) {
            merge(&mut primaries, role, rv.primary);
        } else if let Some(perm) = Permission::parse(&norm) {
            merge(&mut permissions, perm, rv.primary);
        }
    }

    // R9: a role the plan lacks is refused, whatever else was sent.
    for (role, _) in &primaries {
        if let Some(feature) = role.required_feature() {
            if !plan.has(feature) {
                return Err(RoleViolation::PlanLacksFeature {
                    role: *role,
                    feature,
                });
            }
        }
    }

    let primary =
        pick(&primaries, |r| r.as_str()).map_err(RoleViolation::ConflictingPrimaryRoles)?;
    let permission =
        pick(&permissions, |p| p.as_str()).map_err(RoleViolation::ConflictingPermissions)?;

    // R3 / R4 / R7: what was not sent is kept (or defaulted for a new user).
    let base = current.unwrap_or(Roles::DEFAULT);
    let mut next = Roles {
        primary: primary.unwrap_or(base.primary),
        permission: permission.unwrap_or(base.permission),
    };
    // R6: a listener never holds an elevated permission, whether listener
    // was just sent with one, was switched to, or already held.
    if next.primary == PrimaryRole::Listener && next.permission.is_elevated() {
        next.permission = Permission::User;
    }
    Ok(next)
}

fn merge<T: PartialEq>(into: &mut Vec<(T, bool)>, item: T, primary: bool) {
    match into.iter_mut().find(|(t, _)| *t == item) {
        Some(existing) => existing.1 |= primary,
        None => into.push((item, primary)),
    }
}

/// R8: one distinct value wins outright; several need exactly one marked
/// primary.
fn pick<T: Copy>(
    candidates: &[(T, bool)],
    name: impl Fn(T) -> &'static str,
) -> Result<Option<T>, String> {
    match candidates {
        [] => Ok(None),
        [(only, _)] => Ok(Some(*only)),
        many => {
            let marked: Vec<T> = many.iter().filter(|(_, p)| *p).map(|(t, _)| *t).collect();
            match marked.as_slice() {
                [winner] => Ok(Some(*winner)),
                _ => Err(many
                    .iter()
                    .map(|(t, _)| name(*t))
                    .collect::<Vec<_>>()
                    .join(", ")),
            }
        }
    }
}

/// R10: `remove` with a value filter resets the part that value names
/// (permission to user, primary role to analyst); other values change
/// nothing.
pub fn remove_role_value(current: Roles, value: &str) -> Roles {
    let norm = value.trim().to_ascii_lowercase();
    let mut next = current;
    if PrimaryRole::parse(&norm) == Some(current.primary) {
        next.primary = PrimaryRole::Analyst;
    }
    if Permission::parse(&norm) == Some(current.permission) {
        next.permission = Permission::User;
    }
    next
}

/// R10: apply the roles operations of one PATCH, in order.
pub fn apply_role_effects(
    current: Roles,
    effects: &[RolesEffect],
    plan: PlanFeatures,
) -> Result<Roles, RoleViolation> {
    let mut roles = current;
    for effect in effects {
        roles = match effect {
            RolesEffect::Apply(values) => apply_roles(Some(roles), values, plan)?,
            RolesEffect::RemoveAll => Roles::DEFAULT,
            RolesEffect::RemoveMatching(filter) => {
                let mut next = roles;
                if let Value::Array(items) = roles.to_scim() {
                    for item in items
                        .iter()
                        .filter(|i| crate::scim::filter::matches(filter, i))
                    {
                        if let Some(v) = item.get("value").and_then(Value::as_str) {
                            next = remove_role_value(next, v);
                        }
                    }
                }
                next
            }
        };
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PermissionShort::*;
    use PrimaryShort::*;

    // Short names keep the table readable.
    #[derive(Clone, Copy)]
    enum PrimaryShort {
        Rec,
        Voice,
        Ana,
        Lis,
    }
    #[derive(Clone, Copy)]
    enum PermissionShort {
        Usr,
        Mgr,
        Adm,
    }
    fn roles(p: PrimaryShort, q: PermissionShort) -> Roles {
        Roles {
            primary: match p {
                Rec => PrimaryRole::Recorder,
                Voice => PrimaryRole::RecorderAndVoice,
                Ana => PrimaryRole::Analyst,
                Lis => PrimaryRole::Listener,
            },
            permission: match q {
                Usr => Permission::User,
                Mgr => Permission::Manager,
                Adm => Permission::Admin,
            },
        }
    }
    fn sent(values: &[&str]) -> Vec<RoleValue> {
        values
            .iter()
            .map(|v| match v.strip_suffix('*') {
                Some(name) => RoleValue::new(name, true),
                None => RoleValue::new(v, false),
            })
            .collect()
    }
    const NO_PLAN: PlanFeatures = PlanFeatures {
        voice: false,
        listener: false,
    };
    const FULL_PLAN: PlanFeatures = PlanFeatures {
        voice: true,
        listener: true,
    };

    enum Want {
        Ok(Roles),
        Err(&'static str),
    }

    #[test]
    fn every_rule_as_a_table() {
        // (rule, current, sent ("*" = primary=true), plan, expected)
        type Case = (
            &'static str,
            Option<Roles>,
            Vec<&'static str>,
            PlanFeatures,
            Want,
        );
        let table: Vec<Case> = vec![
            (
                "R3 new, no roles",
                None,
                vec![],
                NO_PLAN,
                Want::Ok(roles(Ana, Usr)),
            ),
            (
                "R3 new, only unrecognised",
                None,
                vec!["pilot", "boss"],
                NO_PLAN,
                Want::Ok(roles(Ana, Usr)),
            ),
            (
                "R7 existing, empty list keeps",
                Some(roles(Rec, Adm)),
                vec![],
                NO_PLAN,
                Want::Ok(roles(Rec, Adm)),
            ),
            (
                "R7 existing, only unrecognised keeps",
                Some(roles(Rec, Mgr)),
                vec!["pilot"],
                NO_PLAN,
                Want::Ok(roles(Rec, Mgr)),
            ),
            (
                "R7 unrecognised beside recognised ignored",
                None,
                vec!["pilot", "recorder"],
                NO_PLAN,
                Want::Ok(roles(Rec, Usr)),
            ),
            (
                "R1 new, primary and permission",
                None,
                vec!["recorder", "admin"],
                NO_PLAN,
                Want::Ok(roles(Rec, Adm)),
            ),
            (
                "R2 order irrelevant",
                None,
                vec!["admin", "recorder"],
                NO_PLAN,
                Want::Ok(roles(Rec, Adm)),
            ),
            (
                "R2 mixed case and spaces",
                None,
                vec!["  ReCorder ", "ADMIN"],
                NO_PLAN,
                Want::Ok(roles(Rec, Adm)),
            ),
            (
                "R2 duplicates of one value",
                None,
                vec!["admin", "Admin", " admin"],
                NO_PLAN,
                Want::Ok(roles(Ana, Adm)),
            ),
            (
                "R4 only a permission keeps primary",
                Some(roles(Rec, Usr)),
                vec!["manager"],
                NO_PLAN,
                Want::Ok(roles(Rec, Mgr)),
            ),
            (
                "R4 only a primary keeps permission",
                Some(roles(Rec, Adm)),
                vec!["analyst"],
                NO_PLAN,
                Want::Ok(roles(Ana, Adm)),
            ),
            (
                "R4 new, only a permission",
                None,
                vec!["admin"],
                NO_PLAN,
                Want::Ok(roles(Ana, Adm)),
            ),
            (
                "R5 user removes admin",
                Some(roles(Rec, Adm)),
                vec!["user"],
                NO_PLAN,
                Want::Ok(roles(Rec, Usr)),
            ),
            (
                "R5 user removes manager",
                Some(roles(Rec, Mgr)),
                vec!["user"],
                NO_PLAN,
                Want::Ok(roles(Rec, Usr)),
            ),
            (
                "R6 listener with admin applies listener+user",
                Some(roles(Rec, Usr)),
                vec!["listener", "admin"],
                FULL_PLAN,
                Want::Ok(roles(Lis, Usr)),
            ),
            (
                "R6 listener with manager, new user",
                None,
                vec!["listener", "manager"],
                FULL_PLAN,
                Want::Ok(roles(Lis, Usr)),
            ),
            (
                "R6 listener without admin",
                None,
                vec!["listener"],
                FULL_PLAN,
                Want::Ok(roles(Lis, Usr)),
            ),
            (
                "R6 switching to listener clears admin",
                Some(roles(Rec, Adm)),
                vec!["listener"],
                FULL_PLAN,
                Want::Ok(roles(Lis, Usr)),
            ),
            (
                "R6 admin sent to a listener not applied",
                Some(roles(Lis, Usr)),
                vec!["admin"],
                FULL_PLAN,
                Want::Ok(roles(Lis, Usr)),
            ),
            (
                "R6 leaving listener with admin applies both",
                Some(roles(Lis, Usr)),
                vec!["recorder", "admin"],
                FULL_PLAN,
                Want::Ok(roles(Rec, Adm)),
            ),
            (
                "R8 two primaries, one marked",
                None,
                vec!["recorder*", "analyst"],
                NO_PLAN,
                Want::Ok(roles(Rec, Usr)),
            ),
            (
                "R8 two primaries, none marked",
                Some(roles(Rec, Adm)),
                vec!["recorder", "analyst"],
                NO_PLAN,
                Want::Err("R8"),
            ),
            (
                "R8 two primaries, both marked",
                None,
                vec!["recorder*", "analyst*"],
                NO_PLAN,
                Want::Err("R8"),
            ),
            (
                "R8 two permissions, one marked",
                None,
                vec!["admin*", "manager"],
                NO_PLAN,
                Want::Ok(roles(Ana, Adm)),
            ),
            (
                "R8 two permissions, none marked",
                None,
                vec!["admin", "user"],
                NO_PLAN,
                Want::Err("R8"),
            ),
            (
                "R8 duplicate of one primary is not two",
                None,
                vec!["recorder", "RECORDER*"],
                NO_PLAN,
                Want::Ok(roles(Rec, Usr)),
            ),
            (
                "R8 marked permission does not break primary",
                None,
                vec!["recorder", "admin*"],
                NO_PLAN,
                Want::Ok(roles(Rec, Adm)),
            ),
            (
                "R9 voice off",
                None,
                vec!["recorder_and_voice"],
                NO_PLAN,
                Want::Err("voice plan feature"),
            ),
            (
                "R9 voice on",
                None,
                vec!["recorder_and_voice"],
                FULL_PLAN,
                Want::Ok(roles(Voice, Usr)),
            ),
            (
                "R9 listener off",
                Some(roles(Rec, Usr)),
                vec!["listener"],
                NO_PLAN,
                Want::Err("listener plan feature"),
            ),
            (
                "R9 listener on",
                Some(roles(Rec, Usr)),
                vec!["listener"],
                PlanFeatures {
                    voice: false,
                    listener: true,
                },
                Want::Ok(roles(Lis, Usr)),
            ),
            (
                "R9 voice off even when another primary is marked",
                None,
                vec!["recorder*", "recorder_and_voice"],
                NO_PLAN,
                Want::Err("R9"),
            ),
        ];
        for (name, current, values, plan, want) in table {
            let got = apply_roles(current, &sent(&values), plan);
            match want {
                Want::Ok(expected) => assert_eq!(got, Ok(expected), "{name}"),
                Want::Err(fragment) => {
                    let err = got.expect_err(name).to_string();
                    assert!(err.contains(fragment), "{name}: {err}");
                }
            }
        }
    }

    #[test]
    fn r2_accepts_both_shapes_and_extra_sub_attributes() {
        let objects = serde_json::json!([
            {"value": "recorder", "display": "Recorder", "type": "WindowsAzureActiveDirectoryRole", "primary": "True"},
            {"value": "admin"},
            {"display": "no value is skipped"}
        ]);
        assert_eq!(
            parse_role_values(&objects).unwrap(),
            vec![
                RoleValue::new("recorder", true),
                RoleValue::new("admin", false)
            ]
        );
        let strings = serde_json::json!(["recorder", "admin"]);
        assert_eq!(
            parse_role_values(&strings).unwrap(),
            vec![
                RoleValue::new("recorder", false),
                RoleValue::new("admin", false)
            ]
        );
        assert_eq!(
            parse_role_values(&serde_json::json!("admin")).unwrap(),
            vec![RoleValue::new("admin", false)]
        );
        assert_eq!(parse_role_values(&Value::Null).unwrap(), vec![]);
        assert!(parse_role_values(&serde_json::json!([42])).is_err());
        assert!(parse_role_values(&serde_json::json!([{"value": 1}])).is_err());
    }

    #[test]
    fn r10_remove_by_value_resets_that_part() {
        let table = [
            (roles(Rec, Adm), "admin", roles(Rec, Usr)),
            (roles(Rec, Adm), "Recorder", roles(Ana, Adm)),
            (roles(Rec, Adm), "manager", roles(Rec, Adm)),
            (roles(Rec, Adm), "pilot", roles(Rec, Adm)),
        ];
        for (current, value, want) in table {
            assert_eq!(
                remove_role_value(current, value),
                want,
                "{current} - {value}"
            );
        }
    }

    #[test]
    fn r10_patch_effects_in_order() {
        use crate::scim::filter::parse_filter;
        let f = |s: &str| RolesEffect::RemoveMatching(parse_filter(s).unwrap());
        let table = [
            (
                "R10 add applies to added values",
                vec![RolesEffect::Apply(sent(&["admin"]))],
                roles(Rec, Adm),
            ),
            (
                "R10 replace applies R4",
                vec![RolesEffect::Apply(sent(&["listener"]))],
                roles(Lis, Usr),
            ),
            (
                "R10 remove by value",
                vec![f(r#"value eq "manager""#)],
                roles(Rec, Usr),
            ),
            (
                "R10 remove primary by filter",
                vec![f("primary eq true")],
                roles(Ana, Mgr),
            ),
            (
                "R10 remove roles resets both",
                vec![RolesEffect::RemoveAll],
                roles(Ana, Usr),
            ),
            (
                "R10 effects in order",
                vec![RolesEffect::RemoveAll, RolesEffect::Apply(sent(&["admin"]))],
                roles(Ana, Adm),
            ),
        ];
        for (name, effects, want) in table {
            assert_eq!(
                apply_role_effects(roles(Rec, Mgr), &effects, FULL_PLAN),
                Ok(want),
                "{name}"
            );
        }
    }

    #[test]
    fn r11_rendered_roles_round_trip_unchanged() {
        for current in [roles(Rec, Adm), roles(Lis, Usr), roles(Ana, Mgr)] {
            let values = parse_role_values(&current.to_scim()).unwrap();
            assert_eq!(apply_roles(Some(current), &values, FULL_PLAN), Ok(current));
        }
    }

    #[test]
    fn schemas_list_only_roles_the_plan_allows() {
        assert_eq!(
            NO_PLAN.allowed_primary_roles(),
            vec![PrimaryRole::Recorder, PrimaryRole::Analyst]
        );
        assert_eq!(FULL_PLAN.allowed_primary_roles().len(), 4);
    }
}
