"""The words of the publishing state machine, spelled once: a post's status, a target's status, and
the groups of statuses the rules ask about. StrEnum members are plain strings to the database, JSON
and templates, so rows keep carrying `str` and comparisons with either spelling hold.

    draft --submit--> pending_approval --approve--> scheduled | publishing
    draft | scheduled --publish now / due--> publishing --> published | partially_published | failed
    failed | partially_published --retry--> publishing

A post has one target per network account; each target goes pending -> publishing -> published |
failed (and back to pending on a retry). See ouipost/publishing/service.py for the whole machine.
"""

from __future__ import annotations

from enum import StrEnum


class PostStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    PARTIALLY_PUBLISHED = "partially_published"
    FAILED = "failed"


class TargetStatus(StrEnum):
    PENDING = "pending"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"  # a second target on the same account: one publication, not two


#: Every post status, in the order of its life (the API's `status` filter, the admin stats).
POST_STATUSES: tuple[PostStatus, ...] = tuple(PostStatus)
#: Nothing was sent yet: the post may still be edited, and deleting it loses nothing at a network.
NEVER_PUBLISHED = frozenset({PostStatus.DRAFT, PostStatus.PENDING_APPROVAL, PostStatus.SCHEDULED})
EDITABLE = NEVER_PUBLISHED
#: What `schedule` and `publish now` start from (a pending_approval post goes through approval).
SCHEDULABLE = frozenset({PostStatus.DRAFT, PostStatus.SCHEDULED})
#: What `retry` starts from: some target failed.
RETRYABLE = frozenset({PostStatus.FAILED, PostStatus.PARTIALLY_PUBLISHED})
#: Done: no target is pending or publishing.
FINAL = frozenset({PostStatus.PUBLISHED, PostStatus.PARTIALLY_PUBLISHED, PostStatus.FAILED})
#: At least one network shows the post.
PUBLISHED_SOMEWHERE = frozenset({PostStatus.PUBLISHED, PostStatus.PARTIALLY_PUBLISHED})
#: Sending started: the post's media are in use and can no longer be removed.
MEDIA_LOCKED = frozenset({PostStatus.PUBLISHING, PostStatus.PUBLISHED, PostStatus.PARTIALLY_PUBLISHED})
#: A target still on its way.
TARGET_OPEN = frozenset({TargetStatus.PENDING, TargetStatus.PUBLISHING})

