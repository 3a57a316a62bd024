"""Personal variables: the sandboxed engine, and the admin forms that check templates on save."""

import pytest
from django.conf import settings

from campaigns import personalize
from campaigns.models import Campaign, EmailTemplate
from tests.factories import ContactFactory, ContactListFactory, SmtpAccountFactory


def variables(**attributes):
    return personalize.recipient_variables(
        name="Asha", email="asha@example.in", attributes=attributes, unsubscribe_url="https://x.example/u/"
    )


# --- the engine ---------------------------------------------------------------------------------


def test_name_email_attributes_and_defaults_render():
    rendered = personalize.render(
        'Hi {{ name }} ({{ email }}) in {{ City }}, {{ Zip|default:"no zip" }}; {{ First_Name }}',
        variables(City="Pune", **{"First Name": "Asha"}),
        html=False,
    )
    assert rendered == "Hi Asha (asha@example.in) in Pune, no zip; Asha"
    assert personalize.render('Hello {{ name|default:"there" }}', {"name": ""}, html=False) == "Hello there"


def test_values_are_escaped_in_html_and_not_in_text():
    source = "<p>{{ City }}</p>"
    evil = variables(City="<script>alert(document.cookie)</script>")
    assert personalize.render(source, evil, html=True) == "<p>&lt;script&gt;alert(document.cookie)&lt;/script&gt;</p>"
    assert personalize.render(source, evil, html=False) == "<p><script>alert(document.cookie)</script></p>"


@pytest.mark.parametrize(
    "source",
    [
        '{% include "admin/base.html" %}',
        '{% extends "admin/base.html" %}',
        "{% load static %}{% static 'x' %}",
        "{% load log %}",
        "{% debug %}",
        "{% ssi '/etc/passwd' %}",
        "{% url 'admin:index' %}",
        "{% csrf_token %}",
        '{% now "Y" %}',
        "{% templatetag openblock %}",
        "{% widthratio 1 2 3 %}",
        "{% autoescape off %}{{ City }}{% endautoescape %}",
        "{% for c in name %}{{ c }}{% endfor %}",
        "{{ settings.SECRET_KEY }}",
        "{{ name.upper }}",
        "{{ name.__class__ }}",
        "{{ email.0 }}",
        "{% if settings.DEBUG %}x{% endif %}",
        "{{ name|default:settings.SECRET_KEY }}",
        "{% with s=settings.SECRET_KEY %}{{ s }}{% endwith %}",
        "{% firstof settings.SECRET_KEY name %}",
        "{{ City|safe }}",
        "{{ City|escapejs }}",
        "{{ name|pprint }}",
        "{{ unclosed",
        "{% if %}",
    ],
)
def test_forbidden_or_broken_templates_are_refused_before_saving(source):
    with pytest.raises(personalize.PersonalizationError):
        personalize.validate(source)


def test_nothing_secret_is_reachable_even_when_rendering_unvalidated_lookups():
    # A lookup that is not a recipient variable renders empty, and objects are never in the context.
    assert personalize.render("[{{ settings }}][{{ SECRET_KEY }}][{{ request }}]", variables(), html=True) == "[][][]"
    assert settings.SECRET_KEY not in personalize.render("{{ name }}{{ email }}", variables(), html=True)


def test_variables_used_and_unsubscribe_placement():
    assert personalize.variables_used("{{ a }}{% if b %}{{ c|default:d }}{% endif %}") == {"a", "b", "c", "d"}
    assert personalize.places_unsubscribe_link('<a href="{{ unsubscribe_url }}">x</a>')
    assert not personalize.places_unsubscribe_link("<p>{{ name }}</p>")


# --- size: no template grows without bound in the shared workers -------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{{ name|ljust:"50000000" }}', "The ljust filter takes a width of at most 1,000 characters; 50,000,000 is"),
        ("{{ name|rjust:1001 }}", "The rjust filter takes a width of at most 1,000 characters; 1,001 is too wide."),
        ('{% if name|center:"99999" %}x{% endif %}', "The center filter takes a width of at most 1,000"),
        ('{% with w=name|ljust:"5000" %}{{ w }}{% endwith %}', "The ljust filter takes a width of at most 1,000"),
        (
            "{{ name|ljust:Width }}",
            "The ljust filter takes a width of at most 1,000 characters, written as a number, not a variable (Width).",
        ),
        ('{{ name|ljust:"wide" }}', "The ljust filter takes a width of at most 1,000 characters, not 'wide'."),
        ('{{ Price|floatformat:"50000000" }}', "The floatformat filter takes at most 20 decimal places; 50,000,000"),
        ('{{ Price|floatformat:"-21g" }}', "The floatformat filter takes at most 20 decimal places; 21 is too many."),
        (
            "{{ Price|floatformat:Places }}",
            "The floatformat filter takes a number of decimal places up to 20, "
            "written as a number, not a variable (Places).",
        ),
    ],
)
def test_filters_that_grow_their_output_are_capped_when_the_template_is_saved(source, message):
    with pytest.raises(personalize.PersonalizationError) as refused:
        personalize.validate(source)
    assert message in refused.value.message


def test_filters_within_their_caps_still_work():
    source = '[{{ name|ljust:"10" }}][{{ name|rjust:10 }}][{{ name|center:"1000" }}][{{ Price|floatformat:"-20g" }}]'
    personalize.validate(source)
    rendered = personalize.render(source, variables(Price="12.5"), html=False)
    assert rendered.startswith("[Asha      ][      Asha][") and rendered.endswith("][12.50000000000000000000]")
    assert len(rendered) == 1 + 10 + 2 + 10 + 2 + 1000 + 2 + 23 + 1
    assert (
        personalize.render("{{ Price|floatformat }} {{ Price|floatformat:2 }}", variables(Price="3.14159"), html=False)
        == "3.1 3.14"
    )


@pytest.mark.parametrize(
    "source",
    [
        "{{ Notes }} " * 5,  # text and bare variables: the fast path
        "{% if Notes %}{{ Notes }}{% endif %} " * 5,  # the engine
        "{% with n=Notes %}{% spaceless %}{{ n|upper }}{% endspaceless %}{% endwith %}" * 5,
        "{% firstof Missing Notes %}" * 5,
        "<p>{{ Notes|force_escape|linebreaks }}</p>",  # a filter that grows its value
    ],
)
def test_a_render_past_its_limit_fails_with_the_reason(source):
    # 40,000 characters a value: each template writes more than 100,000 for this recipient.
    values = variables(Notes="& x\n" * 10_000)
    with pytest.raises(personalize.RenderedTooLarge) as refused:
        personalize.render(source, values, html=True, max_chars=100_000, label="HTML body")
    assert refused.value.message == (
        "The HTML body would be longer than 100,000 characters for this recipient: "
        "shorten the template or this contact's values."
    )
    # The same template renders for a recipient with a short value.
    assert "short" in personalize.render(source, variables(Notes="short"), html=False, max_chars=100_000).lower()


def test_no_chain_of_filters_builds_a_value_larger_than_a_body(settings):
    """Each {% with %} doubles the value: 40 of them would make terabytes before anything is
    written, so each filter's result is capped too."""
    settings.RENDERED_BODY_MAX_CHARS = 100_000
    source = "".join(f"{{% with v{i + 1}=v{i}|add:v{i} %}}" for i in range(40)) + "{{ v40|length }}"
    source += "{% endwith %}" * 40
    personalize.validate(source)
    with pytest.raises(personalize.RenderedTooLarge) as refused:
        personalize.render(source, {"v0": "x" * 1000}, html=False)
    assert refused.value.message == (
        "The add filter made a value longer than 100,000 characters (the limit of a whole body) for this recipient."
    )
    assert personalize.render(source, {"v0": ""}, html=False) == "0"


# --- the admin forms ----------------------------------------------------------------------------


@pytest.fixture
def account(marketer):
    return SmtpAccountFactory(owner=marketer)


def campaign_post(account, **overrides):
    data = {
        "name": "Spring",
        "smtp_account": account.pk,
        "subject": "Hello {{ name }}",
        "body_html": "<p>Hello {{ name }}</p>",
        "body_text": "",
        "track_opens": "on",
        "track_clicks": "on",
        "scheduled_at_0": "",
        "scheduled_at_1": "",
        "_save": "Save",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("subject", "Hi {% include 'x.html' %}", "{% include %} tag is not allowed"),
        ("body_html", "<p>{% load static %}</p>", "{% load %} tag is not allowed"),
        ("body_text", "{% debug %}", "{% debug %} tag is not allowed"),
        ("body_html", "<p>{{ settings.SECRET_KEY }}</p>", "is not allowed: use a variable by its name only"),
        ("subject", "Hi {{ name", "Template error"),
        ("body_text", '{{ name|ljust:"50000000" }}', "The ljust filter takes a width of at most 1,000 characters"),
        ("subject", "Hello\r\nBcc: victim@example.org", "Line breaks are not allowed here."),
    ],
)
def test_the_campaign_form_shows_template_and_header_errors_on_save(marketer_client, account, field, value, message):
    response = marketer_client.post("/admin/campaigns/campaign/add/", campaign_post(account, **{field: value}))
    assert response.status_code == 200, "the form is shown again"
    assert message in response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')
    assert not Campaign.objects.exists()


def test_the_template_form_checks_templates_too(marketer_client):
    response = marketer_client.post(
        "/admin/campaigns/emailtemplate/add/",
        {"name": "T", "subject": "{% now 'Y' %}", "body_html": "<p>x</p>", "body_text": ""},
    )
    assert response.status_code == 200 and "{% now %} tag is not allowed" in response.content.decode()
    assert not EmailTemplate.objects.exists()


def test_saved_html_is_sanitised_keeping_email_layout(marketer_client, account, marketer):
    body = (
        "<style>p.x { color: red; }</style>"
        '<table width="600" cellpadding="0" style="border:0"><tr><td bgcolor="#eeeeee" style="padding:8px" '
        'onclick="steal()"><p class="x">Hi {{ name|default:"there" }}</p>'
        '<a href="javascript:alert(1)">bad</a> <a href="https://ok.example/" target="_blank">ok</a>'
        '<img src="https://img.example/logo.png" onerror="steal()" alt="Logo" width="120"></td></tr></table>'
        "<script>steal()</script><iframe src='https://evil.example'></iframe>"
    )
    response = marketer_client.post("/admin/campaigns/campaign/add/", campaign_post(account, body_html=body))
    assert response.status_code == 302, response.content.decode()[:2000]
    saved = Campaign.objects.get(owner=marketer).body_html
    for gone in ("<script", "steal()", "javascript:", "onclick", "onerror", "<iframe"):
        assert gone not in saved
    for kept in (
        '<table width="600" cellpadding="0" style="border:0">',
        'bgcolor="#eeeeee"',
        'style="padding:8px"',
        "<style>p.x { color: red; }</style>",
        'href="https://ok.example/"',
        'src="https://img.example/logo.png"',
        '{{ name|default:"there" }}',
    ):
        assert kept in saved


def test_a_variable_no_recipient_has_is_flagged_on_save(marketer_client, account, marketer):
    contacts = [
        ContactFactory(owner=marketer, attributes={"City": "Pune"}),
        ContactFactory(owner=marketer, attributes={}),
    ]
    contact_list = ContactListFactory(owner=marketer, contacts=contacts)
    response = marketer_client.post(
        "/admin/campaigns/campaign/add/",
        campaign_post(account, lists=[contact_list.pk], body_html="<p>{{ City }} {{ Ctiy }} {{ unsubscribe_url }}</p>"),
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    warnings = [m for m in messages if "No recipient of the chosen lists has" in m]
    assert len(warnings) == 1 and "{{ Ctiy }}" in warnings[0] and "{{ City }}" not in warnings[0]


def test_no_warning_when_every_variable_is_known(marketer_client, account, marketer):
    contact_list = ContactListFactory(
        owner=marketer, contacts=[ContactFactory(owner=marketer, attributes={"City": "X"})]
    )
    response = marketer_client.post(
        "/admin/campaigns/campaign/add/",
        campaign_post(account, lists=[contact_list.pk], body_html="<p>{{ City }} {{ name }} {{ email }}</p>"),
        follow=True,
    )
    assert not [m for m in response.context["messages"] if "No recipient" in str(m)]


def test_the_editor_widget_is_on_campaign_and_template_forms(marketer_client):
    for url in ("/admin/campaigns/campaign/add/", "/admin/campaigns/emailtemplate/add/"):
        body = marketer_client.get(url).content.decode()
        assert "django_ckeditor_5" in body and 'data-upload-url="/ckeditor5/image_upload/"' in body


PLAIN_SOURCES = [
    "",
    "Hello",
    "Hello {{ name }}",
    "{{name}}{{ email }}",
    "<p>Hi {{ name }} &amp; {{ City }}</p>",
    "{{ unsubscribe_url }} and {{ missing }}",
    "{{ True }} {{ None }} {{ False }}",
    "{{ 'literal' }} {{ 5 }}",
    "{{ name|upper }}",
    "{% if City %}{{ City }}{% endif %}",
    "{# note #}{{ name }}",
    "{{ First_Name }}!",
]
PLAIN_VALUES = [
    {
        "name": "Ann",
        "email": "ann@example.com",
        "City": "Pune",
        "First_Name": "Ann",
        "unsubscribe_url": "https://x/u/1",
    },
    {"name": '<b>O\'Brien & "Co"</b>', "email": "a@b.c", "City": "  two  spaces\nline ", "unsubscribe_url": ""},
    {"name": "Zoë 名前", "City": 42, "True": "shadow", "email": ""},
    {"name": 3.5, "City": "", "First_Name": None},
]


@pytest.mark.parametrize("source", PLAIN_SOURCES)
@pytest.mark.parametrize("values", PLAIN_VALUES)
@pytest.mark.parametrize("html", [True, False])
def test_plain_templates_render_as_django_renders_them(source, values, html):
    # render() skips Django's engine for text and bare {{ variable }}s with string values; it must
    # write exactly what the engine writes, escaping included, and leave the rest to the engine.
    from django.template import Context

    variables = {key: value for key, value in values.items() if value is not None}
    expected = personalize.compile_template(source).render(Context(variables, autoescape=html))
    assert personalize.render(source, variables, html=html) == expected


def test_only_text_and_bare_variables_take_the_plain_path():
    assert personalize._plain_pieces("Hi {{ name }}, {{ City }}") == ["Hi ", "name", ", ", "City", ""]
    for source in ("{{ name|upper }}", "{% if name %}x{% endif %}", "{{ True }}", "{{ 'x' }}"):
        assert personalize._plain_pieces(source) is None


@pytest.mark.parametrize(
    ("source", "bare"),
    [
        ("new for {{ City }} in Pune", {"City"}),
        ('new for {{ City|default:"there" }} in Pune', set()),
        ('{{ City|upper|default:"there" }} {{ Plan|yesno:"paid,free" }}', set()),
        ("{{ City|upper }} {{ Zip|default_if_none:'-' }}", {"City", "Zip"}),
        ("{% if City %}in {{ City }}{% else %}near {{ Town }}{% endif %}", {"Town"}),
        ("{% if City and Town %}{{ City }}, {{ Town }}{% endif %}{% if City or Zip %}{{ Zip }}{% endif %}", {"Zip"}),
        ("{% if City %}yes{% endif %}", set()),
        ('{% firstof City "there" %} {% spaceless %}<b>{{ Plan }}</b>{% endspaceless %}', {"Plan"}),
        ("{% with place=City %}{{ place }} {{ Zip }}{% endwith %}", {"Zip"}),
        ("Hi {{ name }} <{{ email }}> {{ 'text' }} {{ True }}", {"name", "email"}),
    ],
)
def test_variables_printed_without_a_fallback(source, bare):
    assert personalize.variables_without_fallback(source) == bare
