"""Typed settings, one place.

Every knob is a `DOCMILL_*` environment variable, optionally seeded from a TOML file named by
`DOCMILL_CONFIG`. The defaults run with no external service: SQLite and a blob folder under
`./docmill-data`, and a local worker pool inside `docmill serve`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCMILL_", extra="ignore")

    # --- storage of state and files -------------------------------------------------------
    data_dir: Path = Field(
        Path("docmill-data"), description="Folder for the SQLite file and local blobs.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    storage_url: str = Field("", description="Blob store URL: empty means data_dir/blobs; "
                             "s3://bucket/prefix for S3-compatible storage.")
    s3_endpoint_url: str = Field("", description="S3 endpoint (SeaweedFS, MinIO...); empty = AWS.")
    s3_region: str = ""
    s3_access_key_id: str = Field("", description="Empty: boto3's usual credential chain.")
    s3_secret_access_key: str = ""
    s3_create_bucket: bool = Field(False, description="Create the bucket at start if missing.")

    # --- HTTP -----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = Field("", description="Base URL clients reach; used for absolute file URLs.")
    max_upload_bytes: int = 100 * 1024 * 1024
    url_download_timeout_s: float = 30.0
    wait_max_s: float = Field(120.0, description="Upper bound of ?wait=SECONDS.")

    # --- dispatch -------------------------------------------------------------------------
    dispatcher: Literal["local", "celery"] = "local"
    broker_url: str = "redis://127.0.0.1:6379/0"
    celery_routes: dict[str, str] = Field(
        default_factory=lambda: {"ocr.": "ocr", "layout.": "ocr", "extract.": "ocr",
                                 "identify.": "ocr", "office.": "office", "html.": "render",
                                 "markdown.": "render", "url.": "render"},
        description="Operation-name prefix -> Celery queue; anything else goes to 'default'.")
    redispatch_after_s: float = Field(
        60.0, description="An ENQUEUED job whose broker message is gone is re-sent after this.")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=0)
    worker_max_tasks: int = Field(0, description="Recycle a worker child after N jobs (0 = never).")
    poll_interval_s: float = Field(
        0.5, description="How often the dispatcher looks for jobs it was not told about.")
    lease_s: float = Field(30.0, description="A worker must renew a job's lease within this time.")
    max_attempts: int = 3
    reclaim_dead_local_workers: bool = Field(
        True, description="Requeue at once the jobs of dead worker pids on this host (turn off "
        "if several containers share one host name).")
    default_timeout_s: float = 600.0
    shutdown_grace_s: float = 30.0

    # --- pipelines ------------------------------------------------------------------------
    pipeline_max_steps: int = Field(50, ge=1, description="Steps a pipeline definition may have.")
    pipeline_max_fanout: int = Field(
        500, ge=1, description="Jobs one `foreach` step may fan out to (pages or files).")
    pipeline_timeout_s: float = Field(
        6 * 3600, gt=0, description="A run unfinished this long after it started ends ERROR "
        "`timeout` (unless given `timeout_s`); each step job has `default_timeout_s`.")

    # --- retention ------------------------------------------------------------------------
    retention_s: float = Field(24 * 3600, description="How long a native job and its files live.")
    sweep_interval_s: float = 30.0

    # --- progress -------------------------------------------------------------------------
    progress_min_interval_s: float = Field(0.25, description="Throttle for progress writes.")

    # --- outbound HTTP (SSRF guard) -------------------------------------------------------
    ssrf_allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts, IPs or CIDR networks that outbound requests may reach even if private.",
    )
    outbound_max_redirects: int = 5

    # --- webhooks -------------------------------------------------------------------------
    webhook_timeout_s: float = 10.0
    webhook_give_up_s: float = Field(24 * 3600, description="Stop retrying a delivery after this.")
    webhook_backoff_base_s: float = 2.0
    webhook_backoff_max_s: float = 600.0

    # --- web console (/console) -----------------------------------------------------------
    console_enabled: bool = Field(True, description="Serve the web console at /console.")
    console_secret: str = Field(
        "", description="Key that encrypts console session cookies. Empty: a random key made "
        "once and kept in data_dir/console-session.key (set it when API servers do not share "
        "data_dir).")
    console_session_ttl_s: int = Field(12 * 3600, ge=60, description="A console sign-in "
                                       "lasts this long.")
    console_secure_cookie: bool = Field(True, description="Mark the session cookie Secure "
                                        "(browsers still keep it on http://localhost); turn "
                                        "off only to serve the console over plain HTTP to "
                                        "another host, which exposes the session.")

    # --- diagnostics ----------------------------------------------------------------------
    enable_diagnostics: bool = Field(False, description="Offer diag.* operations (testing).")

    # --- bootstrap ------------------------------------------------------------------------
    bootstrap_org: str = Field("default", description="Organization created on first start.")

    # --- conversion engines (office, html) ------------------------------------------------
    office_program_dir: str = Field("", description="LibreOffice program folder; empty finds it.")
    office_max_conversions: int = Field(
        200, ge=1, description="Restart a worker's LibreOffice after this many documents.")
    office_max_memory_mb: int = Field(
        1024, ge=64, description="Restart it between jobs past this resident size.")
    office_document_timeout_s: float = Field(
        300.0, gt=0, description="Kill and replace LibreOffice when one document takes longer.")
    office_start_timeout_s: float = Field(60.0, gt=0)
    html_resource_timeout_s: float = Field(
        10.0, gt=0, description="Per resource fetched while rendering HTML.")
    html_resource_max_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Per resource fetched while rendering HTML.")
    html_max_resources: int = Field(
        100, ge=0, description="Remote resources one HTML document may fetch.")
    html_fetch_budget_s: float = Field(
        60.0, gt=0, description="Total time one HTML document may spend fetching.")
    chromium_executable: str = Field(
        "/usr/bin/chromium", description="The Chromium binary the JavaScript HTML engine drives "
                                         "(Debian's chromium package).")
    chromium_page_timeout_s: float = Field(
        30.0, gt=0, description="Loading one page and running its scripts; past it the job fails "
                                "with timeout.")
    chromium_pdf_timeout_s: float = Field(
        60.0, gt=0, description="Printing one page to PDF; a browser still busy past page + pdf "
                                "timeouts is killed and replaced.")
    chromium_start_timeout_s: float = Field(
        30.0, gt=0, description="Starting the worker's browser.")
    chromium_max_renders: int = Field(
        200, ge=1, description="Restart a worker's browser after this many documents (between "
                               "jobs).")
    chromium_sandbox: bool = Field(
        False, description="Chromium's own sandbox (needs a non-root user and user namespaces); "
                           "requests are confined by interception either way.")
    chromium_args: list[str] = Field(
        default_factory=list, description="Extra Chromium command-line flags.")

    # --- OCR and layout engines -----------------------------------------------------------
    ocr_engine_photo: Literal["rapidocr", "tesseract"] = Field(
        "rapidocr", description="OCR engine for photos (JPEG/WEBP input) when a job says "
                                "engine=auto.")
    ocr_engine_scan: Literal["rapidocr", "tesseract"] = Field(
        "tesseract", description="OCR engine for scans (PDF pages, PNG/TIFF/BMP/GIF) when "
                                 "engine=auto.")
    ocr_languages: list[str] = Field(
        default_factory=lambda: ["eng"], description="Tesseract languages used when a job names "
                                                     "none.")
    ocr_tessdata: str = Field(
        "", description="Tesseract language data folder; empty finds Debian's.")
    ocr_render_dpi: int = Field(
        300, ge=72, le=600, description="Resolution PDF pages are rendered at for OCR.")
    ocr_threads: int = Field(
        0, ge=0, description="onnxruntime threads per worker for RapidOCR (0 = cores / workers).")

    # --- structured extraction and identification -----------------------------------------
    extract_llm_url: str = Field("", description="Base URL of an OpenAI-compatible chat server "
                                 "(e.g. http://127.0.0.1:8080/v1) that fills schemas; empty = "
                                 "built-in extractor only.")
    extract_llm_model: str = Field("", description="Model name sent to that server.")
    extract_llm_api_key: str = Field(
        "", description="Bearer token for that server, if it wants one.")
    extract_llm_timeout_s: float = Field(120.0, gt=0, description="One LLM request's time limit; "
                                         "past it the built-in extractor answers.")
    extract_models_dir: str = Field("", description="Folder of field models (`<type code>."
                                    "model.gz`) for the built-in types, in place of those "
                                    "shipped in the package (retrained ones, say).")
    extract_min_labelled: int = Field(10, ge=2, description="Labelled examples a document type "
                                      "needs before Docmill trains its own extractor.")
    identify_threshold: float = Field(0.35, ge=0, le=1, description="Identification confidence "
                                      "below which the answer is 'none of the options'.")

    # --- ConvertAPI face ------------------------------------------------------------------
    convertapi_prefix: str = Field("", description="Path the ConvertAPI routes are mounted "
                                   "under ('' = the root, as the vendor's clients expect).")
    convertapi_job_retention_s: float = Field(
        2 * 3600, gt=0, description="ConvertAPI jobs and their result files are deleted after "
        "this (the vendor promises at most two hours).")
    convertapi_file_retention_s: float = Field(
        3 * 3600, gt=0, description="Files uploaded through ConvertAPI's /upload live this long.")
    convertapi_poll_hold_s: float = Field(
        5.0, ge=0, description="A repeated GET /job/{id} is held until this long after the "
        "previous answer, or until the job finishes if sooner.")
    convertapi_default_timeout_s: int = Field(900, ge=1, description="Timeout of a conversion "
                                              "that names none.")
    convertapi_web_timeout_s: int = Field(120, ge=1, description="Same, for web/URL inputs.")
    convertapi_max_timeout_s: int = Field(1200, ge=1, description="Largest Timeout accepted.")
    convertapi_anonymous_uploads: bool = Field(
        True, description="POST /upload without credentials (what ConvertAPI 1.x clients "
        "send): the file id it gives is usable only by a conversion with a valid key, never "
        "downloadable from /d/. false: every upload needs a key (401 4013).")
    convertapi_anonymous_max_bytes: int = Field(10 * 1024 * 1024, ge=1, description="Largest "
                                                "anonymous upload (413 above).")
    convertapi_anonymous_retention_s: float = Field(600.0, gt=0, description="An anonymous "
                                                    "upload is gone after this.")
    convertapi_anonymous_rate: int = Field(30, ge=1, description="Anonymous uploads one "
                                           "client address may make per window (then 503).")
    convertapi_anonymous_rate_window_s: int = Field(60, ge=1, description="That window.")
    convertapi_conversions_total: int = Field(
        1_000_000, ge=0, description="What GET /user reports as ConversionsTotal.")

    # --- DocRaptor face -------------------------------------------------------------------
    docraptor_prefix: str = Field("", description="Path the DocRaptor routes are mounted "
                                  "under ('' = the root, as the vendor's client expects).")
    docraptor_sync_timeout_s: float = Field(60.0, gt=0, description="Hard limit of a "
                                            "synchronous document (POST /docs).")
    docraptor_async_timeout_s: float = Field(600.0, gt=0, description="Limit of an async one.")
    docraptor_retention_s: float = Field(0, ge=0, description="How long a document and its "
                                         "download_url live (0 = retention_s).")
    docraptor_short_retention: bool = Field(False, description="The vendor's 'as short as "
                                            "possible' retention: a download_url works once.")
    docraptor_download_limit: int = Field(100, ge=1, description="Downloads per download_url.")
    docraptor_hosted_retention_s: float = Field(
        100 * 365 * 24 * 3600, gt=0, description="Life of a hosted document with no "
        "hosted_expires_at ('permanent').")
    docraptor_test_watermark: str = Field("TEST DOCUMENT", description="Drawn across every "
                                          "page of a test: true PDF ('' = none).")
    docraptor_test_max_rows: int = Field(20, ge=0, description="Rows kept per table of a "
                                         "test: true spreadsheet (0 = all).")
    docraptor_javascript: Literal["chromium", "reject", "ignore"] = Field(
        "chromium", description="javascript: true: render in headless Chromium with scripts "
        "on, refuse the document, or render it with WeasyPrint without running scripts.")
    docraptor_callback_format: Literal["form", "json"] = Field(
        "form", description="Body of the callback_url POST.")

    # --- document types and the Docutray face --------------------------------------------
    doctype_example_wait_s: float = Field(120.0, gt=0, description="How long POST "
                                          "/v1/document-types/{code}/examples waits for the "
                                          "sample's OCR before answering 504.")
    docutray_prefix: str = Field("", description="Path the Docutray routes (/api/...) are "
                                 "mounted under ('' = the root, as the vendor's client expects).")
    docutray_sync_wait_s: float = Field(
        45.0, gt=0, lt=60, description="A sync /api/convert or /api/identify still running "
        "after this answers 408 with the job's id (the client re-sends a POST after its 60 s "
        "read timeout, so the answer must come first).")
    docutray_job_timeout_s: float = Field(
        3600.0, gt=0, description="A Docutray job unfinished this long after its request "
        "becomes ERROR (the vendor's 60-minute auto-timeout).")
    docutray_retention_s: float = Field(24 * 3600, gt=0, description="How long Docutray "
                                        "conversions and identifications stay readable.")
    docutray_rate_limits: dict[str, int] = Field(
        default_factory=dict, description="Requests per window for the processing endpoints, "
        "by organization slug ('*' = every other organization); empty = no limit.")
    docutray_rate_window_s: int = Field(60, ge=1, description="Length of the rate-limit "
                                        "window (limitType: minute up to 60 s, hour, day).")
    docutray_retry_after_max_s: int = Field(8, ge=1, description="Cap of a 429's Retry-After "
                                            "header (the client sleeps that long per retry).")
    docutray_webhooks: dict[str, str] = Field(
        default_factory=dict, description="Organization slug -> URL POSTed the vendor's "
        "CONVERSION_/IDENTIFICATION_COMPLETED|FAILED events (the vendor sets these up in its "
        "web UI).")

    # --- expert.ai Extract face ----------------------------------------------------------
    expertai_prefix: str = Field("", description="Path the expert.ai routes (/oauth2/token, "
                                 "/beta/...) are mounted under ('' = the root).")
    expertai_token_secret: str = Field(
        "", description="HMAC key of the bearer tokens /oauth2/token issues. Empty: a random "
        "key made once and kept in data_dir/expertai-token.key (set it explicitly when API "
        "servers do not share data_dir).")
    expertai_token_ttl_s: int = Field(86400, ge=60, description="Lifetime of a bearer token.")
    expertai_max_request_bytes: int = Field(14 * 1024 * 1024, ge=1024, description="Largest "
                                            "POST /beta/layout-document-async body (413 above).")
    expertai_max_pages: int = Field(500, ge=1, description="A longer document's task fails.")
    expertai_retention_s: float = Field(24 * 3600, gt=0, description="How long a task's "
                                        "status and result stay readable (then 404).")
    expertai_timeout_s: float = Field(3600.0, gt=0, description="Limit of one task.")
    expertai_subscribed_orgs: list[str] = Field(
        default_factory=list, description="Organization slugs with an active Extract "
        "subscription; the others get 403. Empty = every organization.")
    expertai_word_separator: bool = Field(True, description="Put 4 zero bytes between the "
                                          "packed word records (the official decoder skips "
                                          "them); false = records back to back.")

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'docmill.db').resolve()}"
        if not self.storage_url:
            self.storage_url = f"file://{(self.data_dir / 'blobs').resolve()}"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("DOCMILL_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
