DROP INDEX activity_tenant_request;
DROP TABLE console_sessions;
