"""All models, importable from one place (Alembic autogenerate sees them through here)."""
from app.models.attachment import Attachment, case_attachments
from app.models.audit import AuditEvent, LoginAttempt
from app.models.base import as_utc, utcnow
from app.models.case import CASE_TEXT_FIELDS, Case, CaseHelpful, CaseState, SensitiveName, Visibility
from app.models.notification import (
    CaseView, Channel, ConsentRequest, MailOutbox, Notification, NotificationKind, NotificationPreference,
    QuestionSeen, Watch,
)
from app.models.knowledge import (
    CaseReport, CaseRevision, CategorySettings, QuestionCaseRef, ReportOutcome, ReportReason, TagStatus,
)
from app.models.municipality import Municipality, MunicipalityGroup, NeighbourLink, group_members
from app.models.search import SearchConsumer, SearchConsumerMark, SearchMiss, SearchOutbox, SearchSynonym
from app.models.question import (
    Answer, CannedReply, Comment, InternalNote, PostRevision, Priority, Question, QuestionKind, QuestionStatus,
)
from app.models.taxonomy import Category, Tag, case_tags, question_tags
from app.models.user import ROLE_LABELS, ROLES_WITH_MUNICIPALITY, ApiToken, Role, User
from app.models.expert import (
    AssignmentShare, ContractForm, Expert, ExpertAssignment, ExpertKind, ExpertProposal, ExpertRequest, ExpertSkill,
    ProposalStatus, RequestMessage, RequestSkill, RequestStatus, Skill, WorkStyle,
)
from app.models.procurement import ProcurementDetails

__all__ = [
    "Attachment", "case_attachments", "CaseView", "Channel", "ConsentRequest", "MailOutbox", "Notification",
    "NotificationKind", "NotificationPreference", "QuestionSeen", "Watch",
    "ApiToken", "AuditEvent", "CaseHelpful", "LoginAttempt", "SensitiveName", "Answer", "CASE_TEXT_FIELDS", "Case", "CaseState", "Category", "Comment",
    "Municipality", "MunicipalityGroup", "NeighbourLink", "Question", "QuestionStatus", "QuestionKind", "Priority",
    "InternalNote", "PostRevision", "CannedReply", "ROLE_LABELS",
    "ROLES_WITH_MUNICIPALITY", "Role", "SearchConsumer", "SearchConsumerMark", "SearchMiss", "SearchOutbox", "SearchSynonym", "Visibility", "Tag", "User", "as_utc", "case_tags",
    "group_members", "question_tags", "utcnow",
    "CaseReport", "CaseRevision", "CategorySettings", "QuestionCaseRef", "ReportOutcome", "ReportReason", "TagStatus",
]
