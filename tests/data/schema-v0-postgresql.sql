-- arena's schema as SQLModel.metadata.create_all made it before migrations (commit 04ab0bb), postgresql.
-- Frozen: tests/store/test_migrations.py builds a pre-migration database from it. Never edit.

CREATE TABLE attempts (
	id SERIAL NOT NULL,
	run_id VARCHAR(64) NOT NULL,
	job_id INTEGER,
	attempt INTEGER NOT NULL,
	warmup BOOLEAN NOT NULL,
	challenge VARCHAR(64) NOT NULL,
	task VARCHAR(16) NOT NULL,
	category VARCHAR(64) NOT NULL,
	model VARCHAR(200) NOT NULL,
	provider VARCHAR(100) NOT NULL,
	started_at TIMESTAMP WITH TIME ZONE NOT NULL,
	ok BOOLEAN NOT NULL,
	failure_class VARCHAR(32),
	status_code INTEGER,
	error TEXT,
	generation_ms FLOAT,
	ttfb_ms FLOAT,
	download_ms FLOAT,
	queue_ms FLOAT,
	processing_ms FLOAT,
	first_partial_ms FLOAT,
	limiter_wait_ms FLOAT,
	retry_after_s FLOAT,
	cost_usd FLOAT,
	image_sha256 VARCHAR(64),
	width INTEGER,
	height INTEGER,
	format VARCHAR(8),
	served_by VARCHAR(200),
	request_id VARCHAR(200),
	PRIMARY KEY (id),
	CONSTRAINT uq_attempt UNIQUE (job_id, attempt)
);

CREATE INDEX ix_attempts_job_id ON attempts (job_id);
CREATE INDEX ix_attempts_model ON attempts (model);
CREATE INDEX ix_attempts_provider ON attempts (provider);
CREATE INDEX ix_attempts_run_id ON attempts (run_id);
CREATE INDEX ix_attempts_started_at ON attempts (started_at);

CREATE TABLE battle_sides (
	challenge VARCHAR(64) NOT NULL,
	model_a VARCHAR(200) NOT NULL,
	model_b VARCHAR(200) NOT NULL,
	issued INTEGER NOT NULL,
	a_left INTEGER NOT NULL,
	last_a_left INTEGER NOT NULL,
	PRIMARY KEY (challenge, model_a, model_b)
);


CREATE TABLE battles (
	id VARCHAR(64) NOT NULL,
	session VARCHAR(64) NOT NULL,
	challenge VARCHAR(64) NOT NULL,
	task VARCHAR(16) NOT NULL,
	category VARCHAR(64) NOT NULL,
	model_left VARCHAR(200) NOT NULL,
	provider_left VARCHAR(100) NOT NULL,
	image_left VARCHAR(64) NOT NULL,
	view_left VARCHAR(64) NOT NULL,
	model_right VARCHAR(200) NOT NULL,
	provider_right VARCHAR(100) NOT NULL,
	image_right VARCHAR(64) NOT NULL,
	view_right VARCHAR(64) NOT NULL,
	view_source VARCHAR(64),
	issued_at TIMESTAMP WITH TIME ZONE NOT NULL,
	expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
	weights_json TEXT NOT NULL,
	ip_hash VARCHAR(64),
	user_agent VARCHAR(200) NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_battles_session_issued ON battles (session, issued_at);

CREATE TABLE derivatives (
	original_sha256 VARCHAR(64) NOT NULL,
	box VARCHAR(16) NOT NULL,
	sha256 VARCHAR(64) NOT NULL,
	path VARCHAR(500) NOT NULL,
	width INTEGER NOT NULL,
	height INTEGER NOT NULL,
	size_bytes INTEGER NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (original_sha256, box)
);


CREATE TABLE images (
	sha256 VARCHAR(64) NOT NULL,
	path VARCHAR(500) NOT NULL,
	format VARCHAR(8) NOT NULL,
	width INTEGER NOT NULL,
	height INTEGER NOT NULL,
	size_bytes INTEGER NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (sha256)
);


CREATE TABLE runs (
	id VARCHAR(64) NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	finished_at TIMESTAMP WITH TIME ZONE,
	status VARCHAR(32) NOT NULL,
	config_source VARCHAR(500) NOT NULL,
	settings_json TEXT NOT NULL,
	max_cost_usd FLOAT,
	samples INTEGER NOT NULL,
	jobs_total INTEGER NOT NULL,
	PRIMARY KEY (id)
);


CREATE TABLE votes (
	id SERIAL NOT NULL,
	battle_id VARCHAR(64) NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	challenge VARCHAR(64) NOT NULL,
	task VARCHAR(16) NOT NULL,
	category VARCHAR(64) NOT NULL,
	model_left VARCHAR(200) NOT NULL,
	model_right VARCHAR(200) NOT NULL,
	provider_left VARCHAR(100) NOT NULL,
	provider_right VARCHAR(100) NOT NULL,
	image_left VARCHAR(64),
	image_right VARCHAR(64),
	outcome VARCHAR(16) NOT NULL,
	voter VARCHAR(64) NOT NULL,
	ip_hash VARCHAR(64),
	dwell_ms FLOAT,
	flagged BOOLEAN NOT NULL,
	flag_reason VARCHAR(200),
	PRIMARY KEY (id),
	UNIQUE (battle_id)
);

CREATE INDEX ix_votes_challenge ON votes (challenge);
CREATE INDEX ix_votes_created_at ON votes (created_at);
CREATE INDEX ix_votes_voter_created ON votes (voter, created_at);

CREATE TABLE jobs (
	id SERIAL NOT NULL,
	run_id VARCHAR(64) NOT NULL,
	challenge VARCHAR(64) NOT NULL,
	task VARCHAR(16) NOT NULL,
	category VARCHAR(64) NOT NULL,
	model VARCHAR(200) NOT NULL,
	provider VARCHAR(100) NOT NULL,
	model_id VARCHAR(200) NOT NULL,
	sample INTEGER NOT NULL,
	status VARCHAR(16) NOT NULL,
	outcome VARCHAR(32),
	attempts INTEGER NOT NULL,
	expected_cost_usd FLOAT,
	cost_usd FLOAT,
	image_sha256 VARCHAR(64),
	finished_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (id),
	CONSTRAINT uq_job UNIQUE (run_id, challenge, model, provider, sample),
	FOREIGN KEY(run_id) REFERENCES runs (id)
);

CREATE INDEX ix_jobs_model ON jobs (model);
CREATE INDEX ix_jobs_run_id ON jobs (run_id);
CREATE INDEX ix_jobs_status ON jobs (status);
