-- Support console sessions: one row per signed-in browser, made by
-- presenting the admin token. The cookie holds a random id; only its
-- SHA-256 is stored, so a leaked table opens no session. Every admin-api
-- process reads the same rows, so any of them serves any session, and
-- signing out (deleting the row) ends it everywhere.
CREATE TABLE console_sessions (
  id_hash text PRIMARY KEY,
  -- Who the actions are recorded as (`console:<actor>`).
  actor text NOT NULL,
  -- The anti-forgery token every form of this session carries.
  csrf_token text NOT NULL,
  -- Which admin token made it (a hash of its hash): replacing the admin
  -- token ends every session made with the old one.
  admin_token text NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);

-- The console links a user's history to the request that made each
-- change: the activity of one IdP request id.
CREATE INDEX activity_tenant_request ON activity (tenant_id, request_id) WHERE request_id IS NOT NULL;
