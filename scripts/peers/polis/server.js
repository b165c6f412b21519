// Ory Polis (npm @boxyhq/saml-jackson) directory sync as a bare SCIM
// server, for `scripts/bench-peers`: the same request handling Polis's own
// API route (pages/api/scim/v2.0/[...directory].ts) does, over Node's http
// module, on a durable PostgreSQL database. It creates one directory and
// prints its SCIM base URL and bearer token as one JSON line on stdout.
'use strict';
const http = require('http');
const jackson = require('@boxyhq/saml-jackson');

const port = Number(process.env.POLIS_PORT || 8091);
const dbUrl = process.env.POLIS_DATABASE_URL;
if (!dbUrl) {
  console.error('POLIS_DATABASE_URL is required');
  process.exit(2);
}
const base = `http://127.0.0.1:${port}`;
const scimPath = '/api/scim/v2.0';

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, data) {
  const body = JSON.stringify(data === undefined ? {} : data);
  res.writeHead(status, { 'Content-Type': 'application/scim+json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

async function main() {
  const { directorySyncController: dsync } = await jackson.controllers({
    externalUrl: base,
    samlPath: '/api/oauth/saml',
    samlAudience: 'https://saml.boxyhq.com',
    scimPath,
    noAnalytics: true,
    db: { engine: 'sql', type: 'postgres', url: dbUrl },
  });
  const { data: directory, error } = await dsync.directories.create({
    name: 'bench',
    tenant: `bench-${Date.now()}`,
    product: 'scimflow-bench',
    type: 'okta-scim-v2',
  });
  if (error) throw new Error(`creating the directory: ${JSON.stringify(error)}`);

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, base);
      const parts = url.pathname.slice(scimPath.length + 1).split('/').filter(Boolean);
      if (!url.pathname.startsWith(scimPath + '/') || parts.length < 2) return send(res, 404, {});
      const [directoryId, resourceType, resourceId] = parts;
      const auth = req.headers.authorization || '';
      const apiSecret = auth.startsWith('Bearer ') ? auth.slice(7) : null;
      // The handler itself compares the directory's secret in constant time.
      const raw = await readBody(req);
      const query = Object.fromEntries(url.searchParams);
      if (query.count) query.count = Number(query.count);
      if (query.startIndex) query.startIndex = Number(query.startIndex);
      const { status, data } = await dsync.requests.handle(
        { method: req.method, body: raw ? JSON.parse(raw) : undefined, directoryId, resourceType, resourceId, apiSecret, query },
        async () => {},
      );
      send(res, status, data);
    } catch (e) {
      send(res, 500, { detail: String(e && e.message) });
    }
  });
  server.keepAliveTimeout = 65000;
  server.listen(port, '127.0.0.1', () => {
    console.log(JSON.stringify({ scim_base_url: `${base}${scimPath}/${directory.id}`, token: directory.scim.secret }));
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
