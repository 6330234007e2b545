def test_login_page_is_japanese_and_loads_nothing_from_outside(client):
    page = client.get("/login").get_data(as_text=True)
    assert "ログイン" in page
    assert "http://" not in page and "https://" not in page


def test_anonymous_visitor_is_sent_to_login(client):
    response = client.get("/questions")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
