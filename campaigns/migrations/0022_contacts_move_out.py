"""Contacts move to the contacts app in Django's state only; their tables stay as they are.

The models' new home is contacts/migrations/0001_initial.py; here the campaigns app forgets them
and points its own foreign keys at contacts.*. No database operation runs: the tables, columns,
indexes and constraints keep their names (the moved models set Meta.db_table).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("campaigns", "0021_campaign_test_send"),
        ("contacts", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[

                migrations.RemoveField(
                    model_name='contact',
                    name='consent_form',
                ),
                migrations.RemoveField(
                    model_name='contact',
                    name='owner',
                ),
                migrations.RemoveField(
                    model_name='contactlist',
                    name='contacts',
                ),
                migrations.AlterField(
                    model_name='email',
                    name='contact',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='emails', to='contacts.contact'),
                ),
                migrations.AlterField(
                    model_name='campaigntestsend',
                    name='contact',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='contacts.contact'),
                ),
                migrations.RemoveField(
                    model_name='subscriptionrequest',
                    name='contact',
                ),
                migrations.RemoveField(
                    model_name='contactlist',
                    name='owner',
                ),
                migrations.RemoveField(
                    model_name='subscriptionform',
                    name='contact_list',
                ),
                migrations.RemoveField(
                    model_name='importjob',
                    name='contact_list',
                ),
                migrations.AlterField(
                    model_name='segmentcondition',
                    name='contact_list',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='contacts.contactlist', verbose_name='list'),
                ),
                migrations.RemoveField(
                    model_name='importjob',
                    name='owner',
                ),
                migrations.RemoveField(
                    model_name='subscriptionform',
                    name='owner',
                ),
                migrations.RemoveField(
                    model_name='subscriptionform',
                    name='smtp_account',
                ),
                migrations.RemoveField(
                    model_name='subscriptionrequest',
                    name='form',
                ),
                migrations.RemoveField(
                    model_name='suppressedhash',
                    name='owner',
                ),
                migrations.AlterField(
                    model_name='campaign',
                    name='lists',
                    field=models.ManyToManyField(blank=True, related_name='campaigns', to='contacts.contactlist'),
                ),
                migrations.DeleteModel(
                    name='Contact',
                ),
                migrations.DeleteModel(
                    name='ContactList',
                ),
                migrations.DeleteModel(
                    name='ImportJob',
                ),
                migrations.DeleteModel(
                    name='SubscriptionForm',
                ),
                migrations.DeleteModel(
                    name='SubscriptionRequest',
                ),
                migrations.DeleteModel(
                    name='SuppressedHash',
                ),
            ],
            database_operations=[],
        ),
    ]
