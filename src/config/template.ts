/**
 * What `openclaw-autoproxy init` writes. Every key of the schema appears here
 * with a comment (a unit test holds this file to the schema).
 */

export const ROUTES_TEMPLATE = `# routes.yml: which upstream serves which model.
# Check it with: openclaw-autoproxy validate

# Inherited by every route unless the route sets its own (1.0.0 also accepts
# the names "global" or "auth" for this block).
defaults:
  authHeader: authorization   # header the route's key is sent in
  authPrefix: "Bearer "       # put before the key ("" for x-api-key style headers)
  # apiKey: sk-...            # a key shared by all routes (prefer apiKeyEnv)
  # apiKeyEnv: SHARED_API_KEY # the environment variable holding that key
  # headers:                  # extra headers sent to every upstream
  #   x-team: research
  isBaseUrl: false            # true: url is a base and the request path is appended
  enabled: true

# Upstream statuses that make "auto" and fallback chains try the next model.
# Default: 412, 429, 500, 502, 503, 504 (or RETRY_STATUS_CODES).
retryStatusCodes: [412, 429, 500, 502, 503, 504]

# How clients are told that the gateway switched models.
notice:
  sse: comment   # comment (safe for every client) | event (1.0.0's named event) | off
  json: true     # add a top-level "gateway_notice" to JSON responses after a switch

# Named groups, callable as a model: round-robin and failover as with "auto".
groups:
  fast: [gpt-4o-mini, llama-3.3-70b-versatile]
  # smart: {models: [gpt-4o, llama-3.3-70b-versatile], strategy: ordered}

# "model": "auto" uses these models (default: every enabled route model).
auto:
  # models: [gpt-4o-mini, llama-3.3-70b-versatile]
  strategy: round-robin   # round-robin | ordered | health (best success rate, then latency)

# Fallback chains for pinned models: when gpt-4o fails over, try these in order.
fallbacks:
  gpt-4o: [gpt-4o-mini, llama-3.3-70b-versatile]

# Retrying the same model on transient failures (5xx, a reset before headers, a short 429).
retry:
  retries: 1              # retries of the same model before failing over
  backoffMs: 250          # exponential backoff with jitter, from this…
  maxBackoffMs: 2000      # …up to this
  retryAfterCapMs: 5000   # a pinned model's 429 asking to wait longer than this fails over instead
  passthroughCodes: []    # extra error codes passed to the client unchanged (never retried)
  failoverCodes: []       # extra error codes meaning "another model can serve this"

# Timeouts (each attempt timeout may also be set per route under "timeouts:").
timeouts:
  connectMs: 10000        # TCP/TLS connect (CONNECT_TIMEOUT_MS)
  headersMs: 60000        # response headers (REQUEST_TIMEOUT_MS)
  firstTokenMs: 10000     # streams: first event, when another candidate could take over
  idleMs: 30000           # silence in the middle of an answer
  deadlineMs: 600000      # the whole request, answer included

# Circuit breaker: a model that keeps failing is left out of plans for a while.
breaker:
  consecutiveFailures: 3  # open after this many failures in a row…
  failureRate: 0.5        # …or this share of failures…
  minRequests: 5          # …among at least this many outcomes…
  windowSize: 20          # …of the last this many…
  windowMs: 60000         # …within this time
  cooldownMs: 5000        # open for this long, doubled on each repeated trip…
  maxCooldownMs: 30000    # …up to this; then one request probes it
  rateLimitCooldownMs: 5000   # cooldown after a 429 without Retry-After

routes:
  - name: openai
    url: https://api.openai.com/v1
    isBaseUrl: true                # /v1/chat/completions, /v1/embeddings, ... are appended
    apiKeyEnv: OPENAI_API_KEY      # the key replaces whatever key the client sent
    models: [gpt-4o-mini, gpt-4o]  # "model" and "models" both take a name or a list

  - name: groq
    url: https://api.groq.com/openai/v1/chat/completions   # a full endpoint URL
    apiKeyEnv: GROQ_API_KEY
    model: llama-3.3-70b-versatile
    fallbacks: [gpt-4o-mini]       # the chain for this route's models
    prefill: false                 # true: a cut stream may be resumed by sending the partial answer back
    timeouts:
      firstTokenMs: 5000           # this provider is fast: give up on it sooner

  - name: cloudflare-gateway
    url: https://gateway.ai.cloudflare.com/v1/ACCOUNT/GATEWAY/openai
    isBaseUrl: true
    authHeader: cf-aig-authorization   # the client's Authorization is not forwarded here
    apiKeyEnv: CF_AIG_TOKEN
    headers:
      x-extra-header: value
    model: gpt-4.1-mini
    enabled: false                     # kept in the file, not routed

  - name: anthropic
    url: https://api.anthropic.com     # /v1/messages is appended
    api: anthropic                     # speaks the Messages API: x-api-key and anthropic-version 2023-06-01 by default
    apiKeyEnv: ANTHROPIC_API_KEY
    models: [claude-sonnet-4-5, claude-haiku-4-5]
    maxTokens: 8192                    # max_tokens when a Chat Completions client sets none (on an openai route: a cap for Messages clients)

  # A route for model "*" catches every model no other route names.
  # - name: catch-all
  #   url: https://openrouter.ai/api/v1
  #   isBaseUrl: true
  #   apiKey: sk-or-...               # inline keys work too; apiKeyEnv keeps them out of the file
  #   model: "*"
`;

export const ENV_TEMPLATE = `# .env for openclaw-autoproxy (copy to .env). Variables set in the
# environment win over this file.

# Where the gateway listens. 127.0.0.1 keeps it private to this machine; set
# HOST=0.0.0.0 only behind a firewall, since it holds your provider keys.
HOST=127.0.0.1
PORT=8787

# Path of the routes file (default: ./routes.yml).
# ROUTES_FILE=./routes.yml

# Milliseconds to wait for an upstream's response headers before trying the next model.
REQUEST_TIMEOUT_MS=60000
# Milliseconds to wait for a TCP/TLS connection to an upstream.
CONNECT_TIMEOUT_MS=10000
# Largest request body accepted, in bytes (default 50 MiB).
MAX_BODY_BYTES=52428800

# Used when routes.yml has no retryStatusCodes.
RETRY_STATUS_CODES=412,429,500,502,503,504

# Fallbacks for pinned models: a model's own list wins over the global one.
# GLOBAL_FALLBACK_MODELS=gpt-4o-mini,llama-3.3-70b-versatile
# MODEL_FALLBACK_MAP={"gpt-4o":["gpt-4o-mini"]}

# A catch-all upstream for models no route names (none by default).
# UPSTREAM_BASE_URL=https://api.openai.com/v1
# UPSTREAM_API_KEY=

# Upstream connection pools.
UPSTREAM_MAX_CONNECTIONS=200
UPSTREAM_KEEPALIVE_TIMEOUT_MS=60000
UPSTREAM_KEEPALIVE_MAX_TIMEOUT_MS=300000

# trace | debug | info | warn | error | fatal | silent
LOG_LEVEL=info

# Provider keys named by apiKeyEnv in routes.yml.
OPENAI_API_KEY=
GROQ_API_KEY=
CF_AIG_TOKEN=
ANTHROPIC_API_KEY=
`;
