"""PostgreSQL's plans for the statements whose cost grew with the tables at a million rows
(BENCHMARKS.md, "A million recipients end to end"): each is run under EXPLAIN ANALYZE on a table
made the way that showed the trap, with fresh statistics, and must read what it needs, not the table."""

import json

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import ledger
from campaigns.models import Email
from contacts.imports import writers
from contacts.models import Contact, SuppressedHash
from contacts.selectors import suppressed
from reporting.selectors.analytics import late_report_figures, recipients_page
from reporting.selectors.dashboard import late_report_totals
from tests.factories import CampaignFactory, ContactListFactory


def plan_nodes(sql, params=None):
    """Every node of the statement's executed plan (EXPLAIN ANALYZE, JSON)."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        (raw,) = cursor.fetchone()
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    nodes, todo = [], [plan]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


def the_query(queries, containing):
    (sql,) = [q["sql"] for q in queries if containing in q["sql"]]
    return sql


def analyze():
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE campaigns_email")
        cursor.execute("ANALYZE campaigns_contact")


def test_a_recipient_page_reads_its_campaign_from_the_campaign_index(marketer):
    # A campaign whose rows all come after those of campaigns that sent at the same time (their rows
    # interleaved, as concurrent campaigns' are), a fifth of the table: with `campaign_id = pk ORDER BY id`
    # the planner walked the primary key from the start, filtering out every older row.
    older = [CampaignFactory(owner=marketer) for _ in range(4)]
    new = CampaignFactory(owner=marketer)
    insert = (
        "INSERT INTO campaigns_email (campaign_id, to_email, to_name, status, attempts, message_id, smtp_response, "
        "failure_class, open_count, machine_open, click_count, possible_duplicate, created_at, updated_at) "
        "SELECT (%s::bigint[])[1 + (i / 100) %% %s], 'r' || i || '@example.org', '', 'pending', 0, '', '', '', 0, "
        "false, 0, false, now(), now() FROM generate_series(1, %s) AS i"
    )
    with connection.cursor() as cursor:
        cursor.execute(insert, [[c.pk for c in older], len(older), 40_000])
        cursor.execute(insert, [[new.pk], 1, 10_000])
    analyze()

    with CaptureQueriesContext(connection) as queries:
        page = recipients_page(campaign=new, page=1, search="", total=10_000)
    assert [row["to_email"] for row in page["rows"][:2]] == ["r1@example.org", "r2@example.org"]
    nodes = plan_nodes(the_query(queries, "LIMIT 25"))
    assert sum(node.get("Rows Removed by Filter", 0) for node in nodes) == 0
    assert any(node.get("Index Name") == "email_campaign_id_order" for node in nodes)


def test_the_import_probes_each_address_instead_of_reading_the_owners_contacts(marketer):
    # With statistics of 20,000 contacts, `lower(email) = ANY(5,000 addresses)` was a scan of them all.
    Contact.objects.bulk_create(Contact(owner=marketer, email=f"c{i}@example.org") for i in range(20_000))
    analyze()
    addresses = [f"c{i}@example.org" for i in range(0, 20_000, 4)] + [f"new{i}@example.org" for i in range(100)]

    with CaptureQueriesContext(connection) as queries:
        found = writers.existing_contacts(owner=marketer, addresses=addresses)
    assert len(found) == 5_000
    nodes = plan_nodes(the_query(queries, "campaigns_contact"))
    assert not [
        node
        for node in nodes
        if node.get("Relation Name") == "campaigns_contact"
        and node["Node Type"] not in ("Index Scan", "Index Only Scan")
    ]
    assert {node.get("Index Name") for node in nodes if node.get("Relation Name") == "campaigns_contact"} == {
        "contact_unique_email_per_owner"
    }


def test_a_start_leaves_erased_addresses_out_with_one_index_probe_per_contact(marketer):
    # An owner who erased someone: every audience row's address is hashed in the statement and looked up
    # in the (owner, hash) index, never a subquery run per contact nor a scan of the hashes per contact.
    contact_list = ContactListFactory(owner=marketer)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO campaigns_contact (owner_id, email, name, attributes, status, created_at, updated_at) "
            "SELECT %s, 'c' || i || '@example.org', '', '{}', %s, now(), now() FROM generate_series(1, 20000) AS i",
            [marketer.pk, Contact.Status.SUBSCRIBED],
        )
        cursor.execute(
            "INSERT INTO campaigns_contactlist_contacts (contactlist_id, contact_id) "
            "SELECT %s, id FROM campaigns_contact WHERE owner_id = %s",
            [contact_list.pk, marketer.pk],
        )
    erased = [f"c{i}@example.org" for i in range(1, 20001, 1000)]
    SuppressedHash.objects.bulk_create(
        SuppressedHash(owner=marketer, address_hash=suppressed.address_hash(address), reason=Contact.Status.BOUNCED)
        for address in erased + [f"gone{i}@example.org" for i in range(500)]
    )
    analyze()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE campaigns_suppressedhash")
        cursor.execute("ANALYZE campaigns_contactlist_contacts")
    campaign = CampaignFactory(owner=marketer, lists=[contact_list])
    sql, params = ledger.materialise_statement(campaign_id=campaign.pk, now=timezone.now())

    nodes = plan_nodes(sql, params)
    assert Email.objects.filter(campaign=campaign).count() == 20_000 - len(erased)
    assert not Email.objects.filter(campaign=campaign, to_email__in=erased).exists()
    assert not [node for node in nodes if node.get("Subplan Name", "").startswith("SubPlan")]
    reads = [node for node in nodes if node.get("Relation Name") == "campaigns_suppressedhash"]
    assert reads and all(
        node.get("Index Name") == "suppressedhash_unique_per_owner" or node["Actual Loops"] == 1 for node in reads
    ), reads


def test_later_bounces_and_complaints_are_counted_from_their_partial_index(marketer):
    # A large campaign with a few delivery reports: its figures (the analytics page) and an owner's
    # totals (the dashboard) must read the reported rows only, not every row of the campaign.
    campaign, other = CampaignFactory(owner=marketer), CampaignFactory(owner=marketer)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO campaigns_email (campaign_id, to_email, to_name, status, attempts, message_id, smtp_response, "
            "failure_class, open_count, machine_open, click_count, possible_duplicate, created_at, updated_at) "
            "SELECT CASE WHEN i %% 2 = 0 THEN %s ELSE %s END, 'r' || i || '@example.org', '', 'sent', 1, '', '', '', "
            "0, false, 0, false, now(), now() FROM generate_series(1, 50000) AS i",
            [campaign.pk, other.pk],
        )
    reported = list(Email.objects.filter(campaign=campaign).values_list("pk", flat=True)[:3])
    now = timezone.now()
    ledger.record_bounce(email_id=reported[0], kind="hard", status="5.1.1", text="550", now=now)
    ledger.record_bounce(email_id=reported[1], kind="soft", status="4.2.2", text="452", now=now)
    ledger.record_complaint(email_id=reported[2], now=now)
    analyze()

    with CaptureQueriesContext(connection) as queries:
        assert late_report_figures(campaign=campaign) == {"bounced_hard": 1, "bounced_soft": 1, "complained": 1}
        assert late_report_totals(campaign_ids=[campaign.pk, other.pk]) == {"bounced_later": 2, "complained": 1}
    for sql in (queries[0]["sql"], queries[1]["sql"]):
        nodes = plan_nodes(sql)
        assert "email_late_report" in {node.get("Index Name") for node in nodes}, nodes
        assert all(node["Actual Rows"] <= 3 for node in nodes if node.get("Relation Name") == "campaigns_email")
