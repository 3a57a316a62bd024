"""The published OpenAPI document and its docs page."""


def test_the_openapi_document_describes_every_operation(client):
    document = client.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in ("/api/v1/contacts", "/api/v1/contacts/{contact_id}", "/api/v1/contacts/upsert", "/api/v1/lists"):
        assert path in paths
    create = paths["/api/v1/contacts"]["post"]
    assert {"201", "401", "409", "422", "429"} <= set(create["responses"])
    assert document["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"


def test_the_docs_page_loads_its_assets_from_this_site(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
