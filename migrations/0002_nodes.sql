-- What every xDS node (agent, proxy, gRPC client) last reported, per control-plane replica
-- holding its stream. Survives restarts, so "which nodes never reported since" has an answer.
CREATE TABLE nodes (
  node_id            text PRIMARY KEY,
  cluster            text NOT NULL DEFAULT '',
  environment        text NOT NULL,
  zone               text NOT NULL DEFAULT '',
  user_agent         text NOT NULL DEFAULT '',
  replica            text NOT NULL,           -- the replica holding (or last holding) its stream
  streams            integer NOT NULL,        -- open streams on that replica
  first_seen         timestamptz NOT NULL DEFAULT now(),
  connected_since    timestamptz,
  last_seen          timestamptz NOT NULL,    -- refreshed by the replica's heartbeat
  last_sent_revision bigint NOT NULL DEFAULT 0,
  applied_revision   bigint NOT NULL DEFAULT 0,  -- everything up to here applied (ACKed)
  nacked_revision    bigint NOT NULL DEFAULT 0,
  nack_type_url      text NOT NULL DEFAULT '',
  nack_error         text NOT NULL DEFAULT ''
);
CREATE INDEX nodes_by_environment ON nodes (environment);
