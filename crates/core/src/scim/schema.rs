//! The attribute definitions of the core User schema and the Enterprise
//! User extension (RFC 7643 §4), as data. Normalisation, PATCH, filters and
//! /Schemas all read these tables, so an attribute's name, type, plurality,
//! case sensitivity and mutability are stated exactly once.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Complex,
    DateTime,
    Reference,
    Binary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub subs: &'static [AttrDef],
}

const fn s(name: &'static str) -> AttrDef {
    AttrDef {
        name,
        ty: AttrType::String,
        multi: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        subs: &[],
    }
}
const fn b(name: &'static str) -> AttrDef {
    AttrDef {
        ty: AttrType::Boolean,
        ..s(name)
    }
}
const fn r(name: &'static str) -> AttrDef {
    AttrDef {
        ty: AttrType::Reference,
        case_exact: true,
        ..s(name)
    }
}
const fn complex(name: &'static str, subs: &'static [AttrDef]) -> AttrDef {
    AttrDef {
        ty: AttrType::Complex,
        subs,
        ..s(name)
    }
}
const fn multi(name: &'static str, subs: &'static [AttrDef]) -> AttrDef {
    AttrDef {
        ty: AttrType::Complex,
        multi: true,
        subs,
        ..s(name)
    }
}

const MULTI_SUBS: &[AttrDef] = &[s("value"), s("display"), s("type"), b("primary")];
const ADDRESS_SUBS: &[AttrDef] = &[
    s("formatted"),
    s("streetAddress"),
    s("locality"),
    s("region"),
    s("postalCode"),
    s("country"),
    s("type"),
    b("primary"),
];
const NAME_SUBS: &[AttrDef] = &[
    s("formatted"),
    s("familyName"),
    s("givenName"),
    s("middleName"),
    s("honorificPrefix"),
    s("honorificSuffix"),
];
const GROUP_REF_SUBS: &[AttrDef] = &[
    AttrDef {
        mutability: Mutability::ReadOnly,
        ..s("value")
    },
    AttrDef {
        mutability: Mutability::ReadOnly,
        ..r("$ref")
    },
    AttrDef {
        mutability: Mutability::ReadOnly,
        ..s("display")
    },
    AttrDef {
        mutability: Mutability::ReadOnly,
        ..s("type")
    },
];
const MANAGER_SUBS: &[AttrDef] = &[
    s("value"),
    r("$ref"),
    AttrDef {
        mutability: Mutability::ReadOnly,
        ..s("displayName")
    },
];

/// Core User attributes (RFC 7643 §4.1), minus `id` and `meta`, which the
/// server owns.
pub static USER_ATTRS: &[AttrDef] = &[
    AttrDef {
        case_exact: true,
        ..s("externalId")
    },
    s("userName"),
    complex("name", NAME_SUBS),
    s("displayName"),
    s("nickName"),
    r("profileUrl"),
    s("title"),
    s("userType"),
    s("preferredLanguage"),
    s("locale"),
    s("timezone"),
    b("active"),
    AttrDef {
        mutability: Mutability::WriteOnly,
        case_exact: true,
        ..s("password")
    },
    multi("emails", MULTI_SUBS),
    multi("phoneNumbers", MULTI_SUBS),
    multi("ims", MULTI_SUBS),
    multi("photos", MULTI_SUBS),
    multi("addresses", ADDRESS_SUBS),
    AttrDef {
        mutability: Mutability::ReadOnly,
        ..multi("groups", GROUP_REF_SUBS)
    },
    multi("entitlements", MULTI_SUBS),
    multi("roles", MULTI_SUBS),
    multi("x509Certificates", MULTI_SUBS),
];

/// Enterprise User extension (RFC 7643 §4.3).
pub static ENTERPRISE_ATTRS: &[AttrDef] = &[
    s("employeeNumber"),
    s("costCenter"),
    s("organization"),
    s("division"),
    s("department"),
    complex("manager", MANAGER_SUBS),
];

/// Look an attribute up by name, case-insensitively (RFC 7643 §2.1).
pub fn find<'a>(defs: &'a [AttrDef], name: &str) -> Option<&'a AttrDef> {
    defs.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// Is `urn` the Enterprise User extension, whatever its case?
pub fn is_enterprise_urn(urn: &str) -> bool {
    urn.eq_ignore_ascii_case(super::ENTERPRISE_USER_SCHEMA)
}

/// Is `urn` the core User schema, whatever its case?
pub fn is_user_urn(urn: &str) -> bool {
    urn.eq_ignore_ascii_case(super::USER_SCHEMA)
}

/// Does `s` start with `urn:`, whatever its case? Reads the first four
/// bytes only when they are whole characters, so any name is safe.
pub fn has_urn_prefix(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}
