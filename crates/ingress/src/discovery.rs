//! Discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and
//! Schemas, generated from the same schema tables the parsers use, so they
//! tell the truth about what is supported. The roles' canonical values are
//! the ones the tenant's plan allows (T4). Also the root `/.search` and
//! `/Me`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{json, Value};

use scimflow_shared::rules::roles::{Permission, PlanFeatures};
use scimflow_shared::scim::query::ListParams;
use scimflow_shared::scim::schema::{AttrDef, AttrType, Mutability, ENTERPRISE_ATTRS, USER_ATTRS};
use scimflow_shared::scim::{
    ScimError, ScimType, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, MAX_PAGE_SIZE, USER_SCHEMA,
};

use crate::auth::AuthedTenant;
use crate::response::{list_response, ok};
use crate::write::parse_body;
use crate::{AppState, IngressError};
use scimflow_shared::scim::bulk::{MAX_BULK_OPERATIONS, MAX_BULK_PAYLOAD};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

pub async fn service_provider_config(
    State(app): State<AppState>,
    tenant: AuthedTenant,
) -> Response {
    let base = app.config.scim_base_url(tenant.0.id);
    ok(&json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": MAX_BULK_OPERATIONS, "maxPayloadSize": MAX_BULK_PAYLOAD},
        "filter": {"supported": true, "maxResults": MAX_PAGE_SIZE},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "The tenant's bearer token, issued with its SCIM endpoint",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
    }))
}

fn resource_type_docs(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User", "name": "User", "endpoint": "/Users",
            "description": "User Account",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_USER_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
        }),
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "Group",
            "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")}
        }),
    ]
}

pub async fn resource_types(State(app): State<AppState>, tenant: AuthedTenant) -> Response {
    let docs = resource_type_docs(&app.config.scim_base_url(tenant.0.id));
    list_response(docs.len() as i64, 1, docs)
}

pub async fn resource_type(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, IngressError> {
    resource_type_docs(&app.config.scim_base_url(tenant.0.id))
        .into_iter()
        .find(|d| {
            d["id"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case(&id))
        })
        .map(|d| ok(&d))
        .ok_or_else(|| ScimError::not_found(format!("ResourceType {id} not found")).into())
}

/// Required attributes. `emails` is required because a user is identified
/// by its primary work email (I1); the one exception, a userName that is
/// itself an email address, is stated in its description.
fn required(name: &str, parent: Option<&str>) -> bool {
    matches!(
        (parent, name),
        (None, "userName") | (None, "emails") | (Some("emails"), "value")
    )
}

fn description(name: &str, parent: Option<&str>) -> &'static str {
    match (parent, name) {
        (None, "emails") => "Required unless userName is an email address: the primary work email identifies the user (rule I1)",
        (None, "userName") => "Unique per tenant, case-insensitively; not used for identity (rule I4)",
        (None, "roles") => "One primary role plus an optional permission (rules R1-R11)",
        _ => "",
    }
}

fn attribute_doc(def: &AttrDef, plan: PlanFeatures, parent: Option<&str>) -> Value {
    let ty = match def.ty {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::Complex => "complex",
        AttrType::DateTime => "dateTime",
        AttrType::Reference => "reference",
        AttrType::Binary => "binary",
    };
    let mutability = match def.mutability {
        Mutability::ReadOnly => "readOnly",
        Mutability::ReadWrite => "readWrite",
        Mutability::Immutable => "immutable",
        Mutability::WriteOnly => "writeOnly",
    };
    let mut doc = json!({
        "name": def.name,
        "type": ty,
        "multiValued": def.multi,
        "description": description(def.name, parent),
        "required": required(def.name, parent),
        "caseExact": def.case_exact,
        "mutability": mutability,
        "returned": if def.mutability == Mutability::WriteOnly { "never" } else { "default" },
        "uniqueness": if def.name == "userName" && parent.is_none() { "server" } else { "none" },
    });
    if def.ty == AttrType::Reference {
        doc["referenceTypes"] = json!(if def.name == "$ref" {
            vec!["User", "Group"]
        } else {
            vec!["external"]
        });
    }
    // Roles: the values this tenant may use (R1, T4).
    if parent == Some("roles") && def.name == "value" {
        let mut values: Vec<&str> = plan
            .allowed_primary_roles()
            .iter()
            .map(|r| r.as_str())
            .collect();
        values.extend(Permission::ALL.iter().map(|p| p.as_str()));
        doc["canonicalValues"] = json!(values);
    }
    if !def.subs.is_empty() {
        doc["subAttributes"] = Value::Array(
            def.subs
                .iter()
                .map(|s| attribute_doc(s, plan, Some(def.name)))
                .collect(),
        );
    }
    doc
}

fn schema_docs(base: &str, plan: PlanFeatures) -> Vec<Value> {
    let schema = |id: &str, name: &str, attrs: Vec<Value>| {
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": id, "name": name, "description": name,
            "attributes": attrs,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")}
        })
    };
    let group_attrs = vec![
        json!({"name": "displayName", "type": "string", "multiValued": false, "description": "", "required": true,
               "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "server"}),
        json!({"name": "externalId", "type": "string", "multiValued": false, "description": "", "required": false,
               "caseExact": true, "mutability": "readWrite", "returned": "default", "uniqueness": "none"}),
        json!({"name": "members", "type": "complex", "multiValued": true, "description": "Users only", "required": false,
        "mutability": "readWrite", "returned": "default", "uniqueness": "none", "subAttributes": [
            {"name": "value", "type": "string", "multiValued": false, "description": "", "required": false,
             "caseExact": true, "mutability": "immutable", "returned": "default", "uniqueness": "none"},
            {"name": "$ref", "type": "reference", "referenceTypes": ["User"], "multiValued": false, "description": "",
             "required": false, "caseExact": true, "mutability": "immutable", "returned": "default", "uniqueness": "none"},
            {"name": "type", "type": "string", "multiValued": false, "description": "", "required": false,
             "caseExact": false, "canonicalValues": ["User"], "mutability": "immutable", "returned": "default", "uniqueness": "none"}
        ]}),
    ];
    vec![
        schema(
            USER_SCHEMA,
            "User",
            USER_ATTRS
                .iter()
                .map(|d| attribute_doc(d, plan, None))
                .collect(),
        ),
        schema(
            ENTERPRISE_USER_SCHEMA,
            "EnterpriseUser",
            ENTERPRISE_ATTRS
                .iter()
                .map(|d| attribute_doc(d, plan, None))
                .collect(),
        ),
        schema(GROUP_SCHEMA, "Group", group_attrs),
    ]
}

pub async fn schemas(State(app): State<AppState>, tenant: AuthedTenant) -> Response {
    let docs = schema_docs(&app.config.scim_base_url(tenant.0.id), tenant.0.plan());
    list_response(docs.len() as i64, 1, docs)
}

pub async fn schema(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, IngressError> {
    schema_docs(&app.config.scim_base_url(tenant.0.id), tenant.0.plan())
        .into_iter()
        .find(|d| {
            d["id"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case(&id))
        })
        .map(|d| ok(&d))
        .ok_or_else(|| ScimError::not_found(format!("Schema {id} not found")).into())
}

/// `/Me` needs an authenticated subject; tenant tokens have none.
pub async fn me(_tenant: AuthedTenant) -> IngressError {
    ScimError::not_implemented("/Me is not supported: tokens authenticate a tenant, not a user")
        .into()
}

/// `POST /.search` at the root: Users, then Groups, paged as one list.
/// A filter naming an attribute only one type has matches nothing of the
/// other type.
pub async fn root_search(
    State(app): State<AppState>,
    tenant: AuthedTenant,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IngressError> {
    let params = ListParams::from_search_body(&parse_body(body)?)?;
    let start = params.start_index;
    let users = crate::users::find(&app, tenant.0.id, params.clone()).await;
    let (user_total, user_page) = match users {
        Ok(found) => found,
        Err(IngressError::Scim(e)) if e.scim_type == Some(ScimType::InvalidFilter) => {
            (0, Vec::new())
        }
        Err(e) => return Err(e),
    };
    let group_params = ListParams {
        start_index: (start - user_total).max(1),
        count: params.count - user_page.len() as i64,
        ..params
    };
    let groups = crate::groups::find(&app, tenant.0.id, group_params).await;
    let (group_total, group_page) = match groups {
        Ok(found) => found,
        Err(IngressError::Scim(e))
            if e.scim_type == Some(ScimType::InvalidFilter) && user_total > 0 =>
        {
            (0, Vec::new())
        }
        Err(e) => return Err(e),
    };
    let mut resources = user_page;
    resources.extend(group_page);
    Ok(list_response(user_total + group_total, start, resources))
}
