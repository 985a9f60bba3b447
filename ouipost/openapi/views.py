"""The resources as answers show them, as marshmallow schemas for the OpenAPI document.

Each mirrors a view function (`workspaces.workspace_view`, `posts.service.post_view`,
`accounts.account_view`, ...) field for field; tests/test_openapi.py validates real answers against
them, and the document forbids fields they do not list, so a view that grows a field fails there
until its schema here says so. A `View` lists every field as always present (null where
`allow_none`), except those in its OPTIONAL; `Loose` views (health components, network-specific
metrics) may carry more fields than they list.
"""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import INCLUDE, Schema, fields, validate

from ouipost.accounts.statuses import ACCOUNT_STATUSES
from ouipost.identity import api_keys, audit, users
from ouipost.platforms.registry import NETWORKS
from ouipost.posts.followups import PartKind, PartSource, PartStatus, ThreadMode
from ouipost.posts.statuses import POST_STATUSES
from ouipost.posts.uploads import MAX_ALT_TEXT, MEDIA_TYPES
from ouipost.webhooks import service as webhooks

String, Integer, Float, Boolean, DateTime = fields.String, fields.Integer, fields.Float, fields.Boolean, fields.DateTime


def _null(field: type[fields.Field], **kwargs: Any) -> fields.Field:
    return field(allow_none=True, **kwargs)


def _enum(choices: Any, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(tuple(choices)), **kwargs)


def _strings(**kwargs: Any) -> fields.List:
    return fields.List(fields.String(), **kwargs)


def _nested(schema: type[Schema], **kwargs: Any) -> fields.Nested:
    return fields.Nested(schema, **kwargs)


def _listed(schema: type[Schema], **kwargs: Any) -> fields.List:
    return fields.List(fields.Nested(schema), **kwargs)


def _map(values: fields.Field | None = None, **kwargs: Any) -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=values, **kwargs)


class View(Schema):
    """A resource as an answer shows it: every field present unless named in OPTIONAL."""

    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            field.required = name not in self.OPTIONAL


class Loose(View):
    """A view whose objects may hold more fields than it lists."""

    class Meta:
        unknown = INCLUDE


# --- shared --------------------------------------------------------------------------------------


class Pagination(View):
    current_page = Integer()
    total_pages = Integer()
    total_items = Integer()
    per_page = Integer()


class Message(View):
    message = String()


class ErrorBody(View):
    code = String(metadata={"description": "Machine-readable, e.g. VALIDATION_ERROR, NOT_FOUND"})
    message = String()
    details = _map(metadata={"description": "Per field for VALIDATION_ERROR; otherwise context"})


class Error(View):
    """The error envelope of every failure."""

    success = Boolean(validate=validate.OneOf([False]))
    error = _nested(ErrorBody)


class Healthz(View):
    status = _enum(["ok"])


# --- /api ----------------------------------------------------------------------------------------


class Platform(View):
    id = _enum(NETWORKS)
    name = String()
    supports_images = Boolean()
    supports_videos = Boolean()
    supports_carousel = Boolean()
    supports_stories = Boolean()
    max_characters = Integer()
    max_images = Integer()
    max_video_duration = _null(Integer)
    oauth_supported = Boolean()


class WorkspaceSettings(View):
    timezone = String()
    default_hashtags = _strings()
    approval_required = Boolean()


class Workspace(View):
    id = String()
    name = String()
    description = _null(String)
    settings = _nested(WorkspaceSettings)
    created_at = DateTime()
    updated_at = DateTime()
    accounts_count = Integer()
    posts_count = Integer()
    members_count = Integer()


class WorkspaceAccount(View):
    id = String()
    platform = _enum(NETWORKS)
    name = _null(String)
    status = _enum(ACCOUNT_STATUSES)
    connected_at = _null(DateTime)


class WorkspacePostStats(View):
    total_posts = Integer()
    scheduled_posts = Integer()
    published_posts = Integer()


class WorkspaceDetail(Workspace):
    accounts = _listed(WorkspaceAccount)
    stats = _nested(WorkspacePostStats)


class Slot(View):
    id = String()
    day = String()
    time = String()
    platforms = _strings()


class UpcomingPost(View):
    slot_time = String(metadata={"description": "ISO 8601 with the schedule's UTC offset"})
    post_id = String()
    platforms = _strings()


class ScheduleStats(View):
    total_published = Integer()
    this_week = Integer()
    next_slot = _null(String)


class Schedule(View):
    id = String()
    name = String()
    description = _null(String)
    timezone = String()
    is_active = Boolean()
    slots = _listed(Slot)
    created_at = DateTime()
    updated_at = DateTime()


class ScheduleDetail(Schedule):
    upcoming_posts = _listed(UpcomingPost)
    stats = _nested(ScheduleStats)


class AccountSettings(View):
    auto_hashtags = Boolean()
    default_hashtags = _strings()


class AccountStats(View):
    OPTIONAL = frozenset({"following", "posts_total"})
    followers = _null(Integer)
    posts_this_month = Integer()
    following = _null(Integer)
    posts_total = _null(Integer)


class AccountHealth(View):
    token_valid = Boolean()
    last_sync = _null(DateTime)
    errors = _strings()


class Account(View):
    id = String()
    platform = _enum(NETWORKS)
    type = _null(String)
    name = _null(String)
    username = _null(String)
    profile_image = _null(String)
    status = _enum(ACCOUNT_STATUSES)
    is_default = Boolean()
    connected_at = _null(DateTime)
    expires_at = _null(DateTime)
    permissions = _null(fields.List, cls_or_instance=fields.String())
    settings = _nested(AccountSettings)
    stats = _nested(AccountStats)


class AccountDetail(Account):
    metadata = _map()
    health = _nested(AccountHealth)


class OAuthStart(View):
    auth_url = String()
    state = String()
    expires_in = Integer(metadata={"description": "Seconds the state stays valid"})


class Disconnected(Message):
    cancelled_posts = Integer()


class PostMedia(View):
    id = String()
    type = _enum(MEDIA_TYPES)
    url = _null(String)
    thumbnail_url = _null(String)
    alt_text = _null(String)


class PostFigures(View):
    impressions = Integer()
    engagement = Integer()
    clicks = Integer()


class PostTotals(View):
    total_impressions = Integer()
    total_engagement = Integer()
    total_clicks = Integer()
    by_platform = _map(_nested(PostFigures))


class PlatformContent(View):
    OPTIONAL = frozenset({"content", "title", "link", "hashtags", "media_ids", "options"})
    content = String()
    title = _null(String)
    link = _null(String)
    hashtags = _strings()
    media_ids = _strings()
    options = fields.Dict(keys=fields.String())


class ThreadPart(View):
    content = String()
    media_ids = _strings()


class Post(View):
    id = String()
    content = String()
    title = _null(String)
    link = _null(String)
    hashtags = _null(fields.List, cls_or_instance=fields.String())
    status = _enum(POST_STATUSES)
    platforms = _strings()
    platform_content = _null(fields.Dict, keys=fields.String(), values=fields.Nested(PlatformContent))
    thread = _listed(ThreadPart, metadata={"description": "Parts published after the post; [] for none"})
    thread_mode = _enum(ThreadMode, allow_none=True, metadata={"description": "null without a thread"})
    first_comment = _null(String)
    media = _listed(PostMedia)
    scheduled_at = _null(DateTime)
    scheduled_timezone = _null(String)
    published_at = _null(DateTime)
    submitted_at = _null(DateTime)  # while pending approval
    rejection_reason = _null(String)  # a draft whose approval was refused
    created_at = DateTime()
    updated_at = DateTime()
    analytics = _nested(PostFigures)


class TargetError(View):
    code = _null(String)
    message = _null(String)


class PostPart(View):
    """A follow-up of one target (ouipost.posts.followups.part_view)."""

    source = _enum(PartSource)
    index = _null(Integer, metadata={"description": "The thread part's index; null for the first comment"})
    kind = _enum(PartKind)
    status = _enum(PartStatus)
    post_id = _null(String)
    url = _null(String)
    published_at = _null(DateTime)
    error = _null(fields.Nested, nested=TargetError)


class PlatformPost(View):
    platform = _enum(NETWORKS)
    account_id = _null(String)
    post_id = _null(String)
    url = _null(String)
    status = String()
    error = _null(fields.Nested, nested=TargetError)
    parts = _listed(PostPart, metadata={"description": "The follow-ups on this network, in sending order"})


class PostDetail(Post):
    platform_posts = _listed(PlatformPost)
    analytics = _nested(PostTotals)


class ScheduledPost(View):
    id = String()
    status = _enum(POST_STATUSES)
    scheduled_at = _null(DateTime)
    scheduled_timezone = _null(String)


class PlatformResult(View):
    platform = _enum(NETWORKS)
    account_id = _null(String)
    status = _enum(["success", "failed", "cancelled", "pending"])
    post_id = _null(String)
    url = _null(String)
    error = _null(fields.Nested, nested=TargetError)
    parts = _listed(PostPart, metadata={"description": "The follow-ups on this network, in sending order"})


class PublishOutcome(View):
    id = String()
    status = _enum(POST_STATUSES)
    published_at = _null(DateTime)
    platform_results = _listed(PlatformResult)


class TextCount(View):
    text = String()
    characters = Integer()
    max_characters = Integer()
    counting = String()


class ValidationReport(View):
    valid = Boolean()
    ready_to_publish = Boolean()
    errors = _map(_strings(), metadata={"description": "Rule violations that block saving, by network"})
    publish_errors = _map(_strings(), metadata={"description": "What would block scheduling or publishing"})
    platforms = _map(_nested(TextCount))


class Dimensions(View):
    width = Integer()
    height = Integer()


class Media(View):
    OPTIONAL = frozenset({"duration"})
    id = String()
    post_id = String()
    type = _enum(MEDIA_TYPES)
    filename = _null(String)
    size = Integer()
    mime_type = String()
    dimensions = _null(fields.Nested, nested=Dimensions)
    url = _null(String)
    thumbnail_url = _null(String)
    alt_text = _null(String)
    created_at = DateTime()
    duration = _null(Float)


class AnalyticsPeriod(View):
    OPTIONAL = frozenset({"name"})
    name = String(metadata={"description": "The admin period asked (7d, 30d, 90d, 1y)"})
    from_ = DateTime(data_key="from")
    to = DateTime()
    timezone = String()
    granularity = String()


class AnalyticsSummary(View):
    total_posts = Integer()
    total_impressions = Integer()
    total_reach = Integer()
    total_engagement = Integer()
    total_clicks = Integer()
    avg_engagement_rate = Float()
    best_performing_platform = _null(String)


class NetworkFigures(Loose):
    posts = Integer()
    impressions = Integer()
    reach = Integer()
    engagement = Integer()
    clicks = Integer()
    engagement_rate = Float()


class TimelinePoint(View):
    date = String(metadata={"description": "hour: local ISO datetime; day/week: YYYY-MM-DD; month: YYYY-MM"})
    impressions = Integer()
    engagement = Integer()
    posts = Integer()
    reach = Integer()
    clicks = Integer()


class TopPost(View):
    OPTIONAL = frozenset({"workspace_id"})
    id = String()
    content = String()
    platform = _enum(NETWORKS)
    impressions = Integer()
    engagement = Integer()
    reach = Integer()
    clicks = Integer()
    engagement_rate = Float()
    published_at = _null(DateTime)
    workspace_id = String()


class Location(View):
    country = String()
    percentage = Float()


class Demographics(View):
    OPTIONAL = frozenset({"by_platform"})
    age_groups = _map(Float())
    top_locations = _listed(Location)
    by_platform = _map(_map())


class Audience(View):
    total_followers = Integer()
    follower_growth = Integer()
    growth_rate = Float()
    demographics = _nested(Demographics)


class WorkspaceAnalytics(View):
    period = _nested(AnalyticsPeriod)
    summary = _nested(AnalyticsSummary)
    by_platform = _map(_nested(NetworkFigures))
    timeline = _listed(TimelinePoint)
    top_posts = _listed(TopPost)
    audience = _nested(Audience)


class PostAnalyticsSummary(View):
    total_impressions = Integer()
    total_reach = Integer()
    total_engagement = Integer()
    total_clicks = Integer()
    engagement_rate = Float()


class PostNetworkFigures(Loose):
    """The common figures, then the network's own metrics by their names."""

    impressions = Integer()
    reach = Integer()
    engagement = Integer()
    clicks = Integer()
    engagement_rate = Float()
    last_synced_at = _null(DateTime)


class PostTimelinePoint(View):
    timestamp = DateTime()
    impressions = Integer()
    reach = Integer()
    engagement = Integer()
    clicks = Integer()


class PostAnalyticsFigures(View):
    summary = _nested(PostAnalyticsSummary)
    by_platform = _map(_nested(PostNetworkFigures))
    timeline = _listed(PostTimelinePoint)


class PostAnalytics(View):
    post_id = String()
    analytics = _nested(PostAnalyticsFigures)


class RefreshQueued(View):
    post_id = String()
    status = _enum(["queued"])
    targets = Integer(metadata={"description": "Published targets whose sync was queued"})


# --- /admin --------------------------------------------------------------------------------------


class SignedInUser(View):
    id = String()
    email = String()
    name = String()
    role = _enum(users.ROLES)


class Login(View):
    token = String(metadata={"description": "A JWT: send it as Authorization: Bearer <token>"})
    expires_at = DateTime()
    user = _nested(SignedInUser)


class User(View):
    id = String()
    email = String()
    name = String()
    role = _enum(users.ROLES)
    is_active = Boolean()
    permissions = fields.List(_enum(users.ADMIN_PERMISSIONS))
    workspaces = _strings()
    created_at = DateTime()
    updated_at = DateTime()
    last_login = _null(DateTime)


class KeyUsage(View):
    requests_today = Integer()
    requests_this_month = Integer()


class Key(View):
    id = String()
    name = String()
    prefix = String()
    tier = String()
    permissions = fields.List(_enum(api_keys.PERMISSIONS))
    workspaces = _strings()
    is_active = Boolean()
    created_at = DateTime()
    updated_at = DateTime()
    last_used_at = _null(DateTime)
    usage = _nested(KeyUsage)


class NewKey(Key):
    api_key = String(metadata={"description": "The secret, shown this once"})


class RotatedKey(View):
    id = String()
    prefix = String()
    new_api_key = String(metadata={"description": "The new secret, shown this once"})
    old_key_expires_at = DateTime()


class WebhookStats(View):
    total_deliveries = Integer()
    successful_deliveries = Integer()
    failed_deliveries = Integer()


class Webhook(View):
    OPTIONAL = frozenset({"secret"})
    id = String()
    url = String()
    description = _null(String)
    events = fields.List(_enum(webhooks.EVENTS))
    is_active = Boolean()
    disabled_reason = _null(String)
    created_at = DateTime()
    updated_at = DateTime()
    last_triggered_at = _null(DateTime)
    stats = _nested(WebhookStats)
    secret = String(metadata={"description": "whsec_...: a generated secret, shown once at creation"})


class Delivery(View):
    id = String()
    webhook_id = String()
    event = _enum(webhooks.EVENTS)
    status = _enum(webhooks.STATUSES)
    attempts = Integer()
    response_status = _null(Integer)
    latency_ms = _null(Integer)
    error = _null(String)
    created_at = DateTime()
    last_attempt_at = _null(DateTime)
    next_attempt_at = _null(DateTime)


class AuditLog(View):
    id = String()
    user_id = _null(String)
    user_email = _null(String)
    action = _enum(sorted(audit.ACTIONS))
    resource_type = _null(String)
    resource_id = _null(String)
    details = _null(fields.Dict)
    ip_address = _null(String)
    user_agent = _null(String)
    created_at = DateTime()


class DashboardOverview(View):
    total_workspaces = Integer()
    total_posts = Integer()
    total_accounts = Integer()
    total_users = Integer()


class DashboardActivity(View):
    posts_today = Integer()
    posts_this_week = Integer()
    scheduled_posts = Integer()
    failed_posts = Integer()


class DashboardUsage(View):
    requests_today = Integer()
    requests_this_month = Integer()
    active_keys = Integer()


class Dashboard(View):
    overview = _nested(DashboardOverview)
    activity = _nested(DashboardActivity)
    api_usage = _nested(DashboardUsage)
    platform_distribution = _map(Integer())


class PostCounts(View):
    total = Integer()
    by_status = _map(Integer())
    by_platform = _map(Integer())


class AccountCounts(View):
    total = Integer()
    by_status = _map(Integer())


class StorageUsage(View):
    storage_used_mb = Float()
    storage_limit_mb = _null(Float)
    api_calls_this_month = Integer()


class Stats(View):
    posts = _nested(PostCounts)
    accounts = _nested(AccountCounts)
    usage = _nested(StorageUsage)


class Component(Loose):
    status = _enum(["healthy", "degraded", "unhealthy"])


class Health(View):
    status = _enum(["healthy", "degraded", "unhealthy"])
    timestamp = DateTime()
    components = _map(_nested(Component))


class NetworkHealth(Loose):
    status = _enum(["operational", "degraded", "down", "unknown"])
    api_status = String()
    last_successful_post = _null(DateTime)
    avg_response_time_ms = _null(Integer)


class PlatformHealth(View):
    platforms = _map(_nested(NetworkHealth))
    overall_status = String()
    last_updated = DateTime()


class Memory(View):
    used_mb = _null(Float)
    limit_mb = _null(Float)


class System(View):
    version = String()
    environment = _enum(["sandbox", "production"])
    python_version = String()
    database_version = String()
    uptime_seconds = Integer()
    memory = _nested(Memory)
    features = _map(Boolean())


MEDIA_UPLOAD: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "additionalProperties": False,
    "properties": {
        "file": {"type": "string", "contentMediaType": "application/octet-stream",
                 "description": "The file; its type is read from its bytes, not its name"},
        "type": {"type": "string", "enum": list(MEDIA_TYPES),
                 "description": "The kind expected; 422 when the bytes are another kind"},
        "alt_text": {"type": "string", "maxLength": MAX_ALT_TEXT},
    },
}


# Bodies the routes accept, shown in /docs (and tried first by Schemathesis).
POST_EXAMPLE: dict[str, Any] = {
    "content": "Spring menu is out! Come taste it this weekend.",
    "platforms": ["twitter", "linkedin"],
    "title": "Spring menu",
    "link": "https://example.com/menu",
    "hashtags": ["food", "spring"],
    "platform_content": {"twitter": {"content": "Spring menu is out!"}},
}
POST_SCHEDULE_EXAMPLE: dict[str, Any] = {"scheduled_at": "2030-03-01T09:30:00", "timezone": "Europe/Paris"}
SCHEDULE_EXAMPLE: dict[str, Any] = {
    "name": "Weekday mornings",
    "timezone": "Europe/Paris",
    "slots": [
        {"day": "monday", "time": "09:00", "platforms": ["twitter", "linkedin"]},
        {"day": "thursday", "time": "12:30", "platforms": ["twitter"]},
    ],
}
USER_EXAMPLE: dict[str, Any] = {
    "email": "editor@example.com", "name": "Eddie Editor", "password": "a long passphrase here", "role": "editor",
}
WEBHOOK_EXAMPLE: dict[str, Any] = {
    "url": "https://hooks.example.com/ouipost", "events": ["post.published", "post.failed"],
    "description": "Publishing outcomes",
}
