"""The OpenAPI document describes exactly the API the app serves, and real answers fit it."""
import re

from app.api.openapi import openapi_document


def api_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    return routes


def documented_routes(document) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def test_every_api_route_is_documented_and_every_documented_route_exists(app):
    document = openapi_document()
    assert api_routes(app) == documented_routes(document)


def test_openapi_json_is_served_and_is_openapi_3(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_reference_resolves(app):
    document = openapi_document()
    text = repr(document)
    for ref in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert ref in document["components"]["schemas"], ref


def _resolve(document, schema):
    if "$ref" in schema:
        return _resolve(document, document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    if "allOf" in schema:
        merged = {"properties": {}, "required": []}
        for part in schema["allOf"]:
            part = _resolve(document, part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return merged
    return schema


def test_real_answers_carry_the_documented_fields(client, make_user, token_for):
    document = openapi_document()
    kure = token_for(make_user("municipal", "呉市"))
    desk = token_for(make_user("helpdesk"))
    question = client.post("/api/v1/questions", headers=kure, json={"title": "t", "body": "b", "category": "network"}).get_json()
    answer = client.post(f"/api/v1/questions/{question['id']}/answers", headers=desk, json={"body": "a"}).get_json()
    case = client.post(f"/api/v1/questions/{question['id']}/resolve", headers=desk, json={"answer_id": answer["id"]}).get_json()
    thread = client.get(f"/api/v1/questions/{question['id']}", headers=kure).get_json()
    for payload, name in ((thread, "Question"), (case, "Case")):
        schema = _resolve(document, {"$ref": f"#/components/schemas/{name}"})
        assert set(schema["required"]) <= set(payload), name
        assert set(payload) <= set(schema["properties"]), (name, set(payload) - set(schema["properties"]))
