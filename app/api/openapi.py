"""The OpenAPI 3 description of API v1. A test checks that it and the app's routes agree."""
from __future__ import annotations

from copy import deepcopy

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                "findings": {"type": "array", "items": {"type": "object", "properties": {
                    "field": {"type": "string"}, "kind": {"type": "string"}, "label": {"type": "string"},
                    "text": {"type": "string"}, "position": {"type": "integer"},
                    "attachment_id": {"type": "integer", "description": "the file a finding of field attachments is in"}}}},
            },
        }
    },
}

_MUNICIPALITY = {
    "type": "object",
    "nullable": True,
    "properties": {"code": {"type": "string"}, "name": {"type": "string"}},
}

_AUTHOR = {
    "type": "object",
    "properties": {"username": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string"}},
}

_ATTACHMENTS = {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}}
_ATTACHMENT = {
    "type": "object",
    "required": ["id", "filename", "content_type", "size", "url"],
    "properties": {
        "id": {"type": "integer"},
        "filename": {"type": "string", "description": "the name the user gave (display only)"},
        "content_type": {"type": "string", "description": "decided from the content"},
        "size": {"type": "integer"},
        "url": {"type": "string", "description": "GET it with the same token"},
    },
}
_UPLOAD = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"},
                 "description": "one or more files: PNG, JPEG, GIF, PDF, text/log, CSV, XLSX, DOCX, ZIP"},
        "post_type": {"type": "string", "enum": ["question", "answer", "comment", "note"]},
        "post_id": {"type": "integer"},
    },
}}}}

_POST = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "body": {"type": "string"},
        "body_html": {"type": "string"},
        "author": {"$ref": "#/components/schemas/Author"},
        "created_at": {"type": "string", "format": "date-time"},
        "edited_at": {"type": "string", "format": "date-time", "nullable": True},
        "withdrawn": {"type": "boolean", "description": "the text is gone (body is empty)"},
        "withdrawn_at": {"type": "string", "format": "date-time"},
        "withdrawn_by": {"allOf": [{"$ref": "#/components/schemas/Author"}], "nullable": True},
        "attachments": _ATTACHMENTS,
    },
}

_TAGS = {"type": "array", "items": {"type": "string"}}

_STATUS = {"type": "string", "enum": ["new", "in_progress", "waiting", "resolved", "closed"],
           "description": "new 受付 / in_progress 対応中 (the help desk's move) / waiting 回答待ち (the municipality's move) / resolved 解決 / closed 終了"}
_KIND = {"type": "string", "enum": ["question", "incident", "procurement", "other"]}
_PRIORITY = {"type": "string", "enum": ["normal", "urgent"]}
_CONSENT = {"type": "string", "enum": ["private", "neighbours", "all"]}

_QUESTION_SUMMARY = {
    "type": "object",
    "required": ["id", "title", "status", "category", "tags", "sharing_consent"],
    "properties": {
        "id": {"type": "integer"},
        "title": {"type": "string"},
        "status": _STATUS,
        "whose_move": {"type": "string", "enum": ["helpdesk", "municipality"], "nullable": True},
        "kind": _KIND,
        "priority": _PRIORITY,
        "category": {"type": "string", "description": "category slug"},
        "tags": _TAGS,
        "municipality": {"$ref": "#/components/schemas/Municipality"},
        "owner": {"allOf": [{"$ref": "#/components/schemas/Author"}], "nullable": True,
                  "description": "the help-desk member who owns it (担当者)"},
        "sharing_consent": _CONSENT,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "first_response_seconds": {"type": "integer", "nullable": True},
        "resolution_seconds": {"type": "integer", "nullable": True,
                               "description": "without the time spent waiting for the municipality"},
    },
}

_QUESTION = {
    "allOf": [
        {"$ref": "#/components/schemas/QuestionSummary"},
        {
            "type": "object",
            "required": ["body", "body_html", "answers", "comments"],
            "properties": {
                "body": {"type": "string"},
                "body_html": {"type": "string", "description": "cleaned HTML, as pages show it"},
                "asker": {"$ref": "#/components/schemas/Author"},
                "resolved_answer_id": {"type": "integer", "nullable": True},
                "resolved_at": {"type": "string", "format": "date-time", "nullable": True},
                "urgent_reason": {"type": "string"},
                "edited_at": {"type": "string", "format": "date-time", "nullable": True},
                "withdrawn": {"type": "boolean"},
                "duplicate_of": {"type": "integer", "nullable": True},
                "merged_into": {"type": "integer", "nullable": True},
                "case_id": {"type": "integer", "nullable": True},
                "attachments": _ATTACHMENTS,
                "answers": {"type": "array", "items": {"$ref": "#/components/schemas/Post"}},
                "comments": {"type": "array", "items": {"$ref": "#/components/schemas/Post"}},
                "internal_notes": {"type": "array", "items": {"$ref": "#/components/schemas/Post"},
                                   "description": "only for the help desk and administrators"},
            },
        },
    ]
}

_CASE_KIND = {"type": "string", "enum": ["case", "article"],
              "description": "case: curated from a question; article: お知らせ・手順書・注意喚起 written by the help desk"}
_ARTICLE_TYPE = {"type": "string", "enum": ["notice", "procedure", "advisory"], "nullable": True,
                 "description": "an article's type (notice お知らせ, procedure 手順書, advisory 注意喚起); null for a case"}

_SEARCH_HIT = {
    "type": "object",
    "required": ["id", "title", "snippet", "score"],
    "properties": {
        "id": {"type": "integer"},
        "title": {"type": "string"},
        "snippet": {"type": "string", "description": "HTML: escaped text with <mark> around the matches"},
        "score": {"type": "number"},
        "category": {"type": "string"},
        "tags": _TAGS,
        "municipality": {"$ref": "#/components/schemas/Municipality"},
        "visibility": {"type": "string", "enum": ["private", "neighbours", "all"], "nullable": True,
                       "description": "null for an anonymous case outside its owner and the help desk"},
        "anonymous": {"type": "boolean"},
        "kind": _CASE_KIND,
        "article_type": _ARTICLE_TYPE,
        "published_at": {"type": "string", "format": "date-time", "nullable": True},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}

_CASE_TEXT = ["issue", "environment", "cause", "resolution"]
_CASE = {
    "type": "object",
    "required": ["id", "title", "state", "category", "tags", "published_at", "updated_at"]
    + _CASE_TEXT + [f"{f}_html" for f in _CASE_TEXT],
    "properties": {
        "id": {"type": "integer"},
        "title": {"type": "string"},
        "title_html": {"type": "string"},
        "state": {"type": "string", "enum": ["draft", "published", "archived"]},
        "kind": _CASE_KIND,
        "article_type": _ARTICLE_TYPE,
        "article_type_label": {"type": "string", "nullable": True, "description": "お知らせ, 手順書 or 注意喚起"},
        "visibility": {"type": "string", "enum": ["private", "neighbours", "all"], "nullable": True,
                       "description": "how far it is shared; null for an anonymous case outside its owner and the help desk"},
        "anonymous": {"type": "boolean"},
        "sharing_consent": {"type": "string", "enum": ["private", "neighbours", "all"], "nullable": True},
        "helpful_count": {"type": "integer"},
        "category": {"type": "string"},
        "category_name": {"type": "string"},
        "tags": _TAGS,
        "municipality": {"$ref": "#/components/schemas/Municipality"},
        "question_id": {"type": "integer", "nullable": True},
        "attachments": _ATTACHMENTS,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "published_at": {"type": "string", "format": "date-time", "nullable": True},
        **{f: {"type": "string"} for f in _CASE_TEXT},
        **{f"{f}_html": {"type": "string"} for f in _CASE_TEXT},
    },
}


def _error_responses(*codes: int) -> dict:
    text = {
        400: "invalid input (malformed JSON, invalid UTF-8, bad parameter)",
        401: "missing or bad token",
        403: "action not allowed",
        404: "object not found or not visible to the caller",
        409: "state conflict",
        413: "request too large",
        415: "body is not application/json",
        422: "validation failed; `fields` names each problem",
        503: "search is unavailable until the index is rebuilt (`search_unavailable`)",
    }
    return {
        str(code): {"description": text[code], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for code in codes
    }


def _json(schema_ref: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def _body(properties: dict, required: list[str] | None = None) -> dict:
    schema: dict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_ID = lambda name: {"name": name, "in": "path", "required": True,  # noqa: E731
                   "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999}}
_PAGING = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
]

_DOCUMENT = {
    "openapi": "3.0.3",
    "info": {
        "title": "県・市町 情報システム相談窓口と事例ライブラリ API",
        "version": "1.0.0",
        "description": "Token authentication: `Authorization: Bearer <token>` (create one with "
        "`flask --app app tokens create USERNAME`). Every error is `{\"error\": {\"code\", \"message\"}}`.",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearerAuth": []}],
    "paths": {
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3 document", "content": {"application/json": {"schema": {"type": "object"}}}}},
            }
        },
        "/questions": {
            "get": {
                "summary": "Questions the caller may see, newest first",
                "parameters": [{"name": "status", "in": "query", "schema": _STATUS}] + _PAGING,
                "responses": {
                    "200": {
                        "description": "a page of questions",
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "required": ["total", "results"],
                            "properties": {
                                "total": {"type": "integer"},
                                "page": {"type": "integer"},
                                "per_page": {"type": "integer"},
                                "results": {"type": "array", "items": {"$ref": "#/components/schemas/QuestionSummary"}},
                            },
                        }}},
                    },
                    **_error_responses(400, 401),
                },
            },
            "post": {
                "summary": "Ask a question (municipal staff)",
                "requestBody": _body({
                    "title": {"type": "string", "maxLength": 200},
                    "body": {"type": "string", "maxLength": 100000, "description": "Markdown"},
                    "category": {"type": "string", "description": "slug (network, security, optimization) or Japanese name"},
                    "tags": {"oneOf": [_TAGS, {"type": "string"}]},
                    "sharing_consent": _CONSENT,
                    "kind": _KIND, "priority": _PRIORITY,
                    "urgent_reason": {"type": "string", "maxLength": 200, "description": "required when urgent"},
                }, ["title", "body", "category"]),
                "responses": {
                    "201": _json("#/components/schemas/Question", "the new question"),
                    **_error_responses(400, 401, 403, 413, 415, 422),
                },
            },
        },
        "/questions/{question_id}": {
            "get": {
                "summary": "A question thread with answers and comments (and internal notes for the help desk)",
                "parameters": [_ID("question_id")],
                "responses": {"200": _json("#/components/schemas/Question", "the thread"), **_error_responses(401, 404)},
            },
            "patch": {
                "summary": "The help desk's handling: owner (user id or name; null: unassigned), priority "
                           "(urgent needs urgent_reason), kind, status waiting (回答待ち)",
                "parameters": [_ID("question_id")],
                "requestBody": _body({
                    "owner": {"oneOf": [{"type": "integer"}, {"type": "string"}], "nullable": True},
                    "priority": _PRIORITY, "urgent_reason": {"type": "string"}, "kind": _KIND,
                    "status": {"type": "string", "enum": ["waiting"]},
                }),
                "responses": {
                    "200": _json("#/components/schemas/Question", "the thread"),
                    **_error_responses(400, 401, 403, 404, 409, 413, 415, 422),
                },
            }
        },
        "/questions/{question_id}/answers": {
            "post": {
                "summary": "Answer a question (help desk); await_reply sets 回答待ち (waiting for the municipality)",
                "parameters": [_ID("question_id")],
                "requestBody": _body({"body": {"type": "string"}, "await_reply": {"type": "boolean"}}, ["body"]),
                "responses": {
                    "201": {"description": "the answer's id", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["id"],
                        "properties": {"id": {"type": "integer"}, "question_id": {"type": "integer"}, "status": _STATUS},
                    }}}},
                    **_error_responses(400, 401, 403, 404, 413, 415, 422),
                },
            }
        },
        "/questions/{question_id}/comments": {
            "post": {
                "summary": "Comment on a thread (asking municipality or help desk); a comment by the municipality "
                           "ends 回答待ち, a help-desk comment with await_reply starts it",
                "parameters": [_ID("question_id")],
                "requestBody": _body({"body": {"type": "string"}, "await_reply": {"type": "boolean"}}, ["body"]),
                "responses": {
                    "201": {"description": "the comment's id", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["id"],
                        "properties": {"id": {"type": "integer"}, "question_id": {"type": "integer"}, "status": _STATUS},
                    }}}},
                    **_error_responses(400, 401, 403, 404, 413, 415, 422),
                },
            }
        },
        "/questions/{question_id}/notes": {
            "post": {
                "summary": "Write an internal note (help desk only; never shown to the municipality)",
                "parameters": [_ID("question_id")],
                "requestBody": _body({"body": {"type": "string"}}, ["body"]),
                "responses": {
                    "201": {"description": "the note's id", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["id"],
                        "properties": {"id": {"type": "integer"}, "question_id": {"type": "integer"}},
                    }}}},
                    **_error_responses(400, 401, 403, 404, 413, 415, 422),
                },
            }
        },
        "/questions/{question_id}/resolve": {
            "post": {
                "summary": "Mark the resolving answer; creates a draft case from the thread",
                "parameters": [_ID("question_id")],
                "requestBody": _body({"answer_id": {"type": "integer"}}, ["answer_id"]),
                "responses": {
                    "201": _json("#/components/schemas/Case", "the draft case"),
                    **_error_responses(400, 401, 403, 404, 409, 415, 422),
                },
            }
        },
        "/questions/{question_id}/attachments": {
            "post": {
                "summary": "Attach files to the question (post_type question) or one of its posts, by its author",
                "parameters": [_ID("question_id")],
                "requestBody": _UPLOAD,
                "responses": {
                    "201": {"description": "the stored files", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"attachments": _ATTACHMENTS}}}}},
                    **_error_responses(400, 401, 403, 404, 409, 413, 415, 422),
                },
            }
        },
        "/cases/{case_id}/attachments": {
            "post": {
                "summary": "Add files to a case (help desk); 409 sensitive_data for a case shared beyond its owner "
                           "when a file holds a sensitive detail, or is one the check cannot read (image, PDF, XLSX, "
                           "DOCX, ZIP) and files_checked is not true",
                "parameters": [_ID("case_id")],
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {
                        "file": _UPLOAD["content"]["multipart/form-data"]["schema"]["properties"]["file"],
                        "files_checked": {"type": "string", "enum": ["true", "false"],
                                          "description": "the files were opened and hold no sensitive detail "
                                                         "(recorded in the audit log)"},
                    },
                }}}},
                "responses": {
                    "201": _json("#/components/schemas/Case", "the case with its attachments"),
                    **_error_responses(400, 401, 403, 404, 409, 413, 415, 422),
                },
            }
        },
        "/attachments/{attachment_id}": {
            "get": {
                "summary": "Download an attachment (only for who may read its post or a case that carries it)",
                "parameters": [_ID("attachment_id")],
                "responses": {
                    "200": {"description": "the file (images inline, everything else as an attachment)",
                            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                                        "image/png": {"schema": {"type": "string", "format": "binary"}},
                                        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                                        "image/gif": {"schema": {"type": "string", "format": "binary"}},
                                        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                                        "text/plain": {"schema": {"type": "string"}},
                                        "text/csv": {"schema": {"type": "string"}},
                                        "application/zip": {"schema": {"type": "string", "format": "binary"}},
                                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}},
                                        "application/vnd.openxmlformats-officedocument.wordprocessingml.document": {"schema": {"type": "string", "format": "binary"}}}},
                    **_error_responses(401, 404),
                },
            }
        },
        "/cases": {
            "get": {
                "summary": "Search the case library (Japanese full text, the caller's permissions applied)",
                "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "words; \"...\" for a phrase"},
                    {"name": "category", "in": "query", "schema": {"type": "string"}},
                    {"name": "tag", "in": "query", "schema": {"type": "string"}},
                    {"name": "municipality", "in": "query", "schema": {"type": "string"}, "description": "name, code, or `pref`"},
                    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["case", "article"]},
                     "description": "cases only or articles only (facet `kind` counts both)"},
                    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"}},
                    {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["relevance", "newest"]}},
                ] + _PAGING,
                "responses": {
                    "200": {
                        "description": "a page of hits; total is exact up to 1000 (then total_is_lower_bound)",
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "required": ["total", "results"],
                            "properties": {
                                "total": {"type": "integer"},
                                "total_is_lower_bound": {"type": "boolean"},
                                "page": {"type": "integer"},
                                "per_page": {"type": "integer"},
                                "results": {"type": "array", "items": {"$ref": "#/components/schemas/SearchHit"}},
                                "suggestion": {"type": "object", "nullable": True,
                                               "description": "「もしかして」: a query that finds more, when this one finds fewer than 3",
                                               "properties": {"q": {"type": "string"}}},
                                "facets": {"type": "object", "additionalProperties": {"type": "array", "items": {
                                    "type": "object",
                                    "properties": {"value": {"type": "string"}, "label": {"type": "string"}, "count": {"type": "integer"}},
                                }}},
                            },
                        }}},
                    },
                    **_error_responses(400, 401, 503),
                },
            }
        },
        "/cases/{case_id}": {
            "get": {
                "summary": "A case",
                "parameters": [_ID("case_id")],
                "responses": {"200": _json("#/components/schemas/Case", "the case"), **_error_responses(401, 404)},
            },
            "patch": {
                "summary": "Edit a case (help desk); only the given fields change",
                "parameters": [_ID("case_id")],
                "requestBody": _body({
                    "title": {"type": "string"},
                    **{f: {"type": "string"} for f in _CASE_TEXT},
                    "category": {"type": "string"},
                    "tags": {"oneOf": [_TAGS, {"type": "string"}]},
                }),
                "responses": {
                    "200": _json("#/components/schemas/Case", "the changed case"),
                    **_error_responses(400, 401, 403, 404, 413, 415, 422),
                },
            },
        },
        "/cases/{case_id}/publish": {
            "post": {
                "summary": "Publish a draft case (help desk). Beyond `private`: 409 `consent_required` when wider "
                           "than the owner's consent, 409 `sensitive_data` with `findings` that are neither masked "
                           "(PATCH the fields) nor listed in `keep`",
                "parameters": [_ID("case_id")],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {
                        "visibility": _CONSENT,
                        "anonymous": {"type": "boolean", "default": False},
                        "keep": {"type": "array", "items": {"type": "object", "required": ["text", "reason"],
                                                            "properties": {"text": {"type": "string"},
                                                                           "reason": {"type": "string"}}}},
                    },
                }}}},
                "responses": {
                    "200": _json("#/components/schemas/Case", "the published case"),
                    **_error_responses(400, 401, 403, 404, 409, 415, 422),
                },
            }
        },
        "/cases/{case_id}/consent": {
            "post": {
                "summary": "Change the owner's consent to sharing (staff of the owning municipality, drafts too); "
                           "narrowing narrows a published case at once",
                "parameters": [_ID("case_id")],
                "requestBody": _body({"visibility": _CONSENT}, ["visibility"]),
                "responses": {"200": _json("#/components/schemas/Case", "the case"),
                              **_error_responses(400, 401, 403, 404, 415, 422)},
            }
        },
        "/cases/{case_id}/helpful": {
            "post": {
                "summary": "Mark a case as helpful (参考になった), once per reader",
                "parameters": [_ID("case_id")],
                "responses": {"200": {"description": "the count", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"id": {"type": "integer"}, "helpful_count": {"type": "integer"}}}}}},
                              **_error_responses(401, 403, 404)},
            }
        },
        "/cases/{case_id}/archive": {
            "post": {
                "summary": "Archive a case (help desk): removed from every reader but the help desk, and from search",
                "parameters": [_ID("case_id")],
                "responses": {"200": _json("#/components/schemas/Case", "the archived case"),
                              **_error_responses(401, 403, 404, 409)},
            }
        },
    },
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _ERROR,
            "Municipality": _MUNICIPALITY,
            "Author": _AUTHOR,
            "Post": _POST,
            "QuestionSummary": _QUESTION_SUMMARY,
            "Question": _QUESTION,
            "Case": _CASE,
            "Attachment": _ATTACHMENT,
            "SearchHit": _SEARCH_HIT,
        },
    },
}


def openapi_document() -> dict:
    return deepcopy(_DOCUMENT)
