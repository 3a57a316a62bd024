"""The contacts app takes over Contact, ContactList, ImportJob, SuppressedHash, SubscriptionForm and
SubscriptionRequest from campaigns, in Django's state only: their tables were created by campaigns'
migrations and keep their names (Meta.db_table). The content types move with them, so the permissions
given to the Marketers group and the admin's log entries stay attached.
"""

import contacts.addresses
import contacts.models
import django.db.models.deletion
import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models


MOVED_MODELS = ["contact", "contactlist", "importjob", "suppressedhash", "subscriptionform", "subscriptionrequest"]


def move_content_types(apps, schema_editor, source="campaigns", target="contacts"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    # A content type made for the new label before this ran (none is, unless migrate was interrupted)
    # holds no granted permission yet: the old one, with the grants, wins.
    ContentType.objects.filter(app_label=target, model__in=MOVED_MODELS).filter(
        model__in=ContentType.objects.filter(app_label=source).values("model")
    ).delete()
    ContentType.objects.filter(app_label=source, model__in=MOVED_MODELS).update(app_label=target)


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, source="contacts", target="campaigns")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('campaigns', '0021_campaign_test_send'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('accounts', '0004_smtpaccount_learned_rate'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Contact',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('email', contacts.addresses.ContactEmailField(max_length=254)),
                        ('name', models.CharField(blank=True, max_length=200)),
                        ('attributes', models.JSONField(blank=True, default=dict)),
                        ('status', models.CharField(choices=[('subscribed', 'Subscribed'), ('unsubscribed', 'Unsubscribed'), ('bounced', 'Bounced'), ('complained', 'Complained')], default='subscribed', max_length=20)),
                        ('status_changed_at', models.DateTimeField(blank=True, null=True)),
                        ('consent_at', models.DateTimeField(blank=True, null=True)),
                        ('consent_text', models.TextField(blank=True, db_default='', default='')),
                        ('consent_ip_hash', models.CharField(blank=True, db_default='', default='', max_length=64)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='contacts', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'campaigns_contact',
                        'ordering': ['email'],
                    },
                ),
                migrations.CreateModel(
                    name='ContactList',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=200)),
                        ('description', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('contacts', models.ManyToManyField(blank=True, db_table='campaigns_contactlist_contacts', related_name='lists', to='contacts.contact')),
                        ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='contact_lists', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'campaigns_contactlist',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='ImportJob',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('new_list_name', models.CharField(blank=True, max_length=200)),
                        ('file', models.FileField(blank=True, max_length=500, upload_to=contacts.models.import_upload_path)),
                        ('original_name', models.CharField(max_length=255)),
                        ('encoding', models.CharField(blank=True, help_text='Chosen on the form; blank: detected.', max_length=32)),
                        ('file_description', models.CharField(blank=True, max_length=200)),
                        ('status', models.CharField(choices=[('uploaded', 'Uploaded (waiting to be read)'), ('reading', 'Reading the file'), ('previewed', 'Previewed (waiting for confirmation)'), ('queued', 'Queued'), ('running', 'Importing'), ('done', 'Done'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='uploaded', max_length=20)),
                        ('total_rows', models.PositiveIntegerField(default=0)),
                        ('processed_rows', models.PositiveIntegerField(default=0)),
                        ('created_count', models.PositiveIntegerField(default=0)),
                        ('updated_count', models.PositiveIntegerField(default=0)),
                        ('merged_count', models.PositiveIntegerField(default=0)),
                        ('suppressed_count', models.PositiveIntegerField(default=0)),
                        ('rejected_count', models.PositiveIntegerField(default=0)),
                        ('blank_count', models.PositiveIntegerField(default=0)),
                        ('preview', models.JSONField(blank=True, default=dict)),
                        ('rejected_rows', models.JSONField(blank=True, default=list)),
                        ('notes', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('contact_list', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='import_jobs', to='contacts.contactlist')),
                        ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='import_jobs', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'campaigns_importjob',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='SubscriptionForm',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('title', models.CharField(max_length=200)),
                        ('consent_text', models.TextField(help_text='Shown above the button and recorded on every contact who subscribes through this form.', verbose_name='Consent wording')),
                        ('attributes_asked', models.JSONField(blank=True, default=list, help_text='Contact attributes the form asks for besides email and name, e.g. City, Company.', validators=[contacts.models.validate_attribute_names], verbose_name='Attributes asked')),
                        ('double_opt_in', models.BooleanField(default=True, help_text='Subscribe only once the address is confirmed by email. Turn off only for people who consented elsewhere already.', verbose_name='Double opt-in')),
                        ('enabled', models.BooleanField(default=True, help_text='A disabled form takes no submissions.')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('contact_list', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='subscription_forms', to='contacts.contactlist')),
                        ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='subscription_forms', to=settings.AUTH_USER_MODEL)),
                        ('smtp_account', models.ForeignKey(help_text='Sends the confirmation emails (single opt-in forms too: a suppressed contact confirms by email).', on_delete=django.db.models.deletion.PROTECT, related_name='subscription_forms', to='accounts.smtpaccount', verbose_name='SMTP account')),
                    ],
                    options={
                        'db_table': 'campaigns_subscriptionform',
                        'ordering': ['title'],
                    },
                ),
                migrations.AddField(
                    model_name='contact',
                    name='consent_form',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='contacts.subscriptionform'),
                ),
                migrations.CreateModel(
                    name='SubscriptionRequest',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('email', contacts.addresses.ContactEmailField(max_length=254)),
                        ('name', models.CharField(blank=True, max_length=200)),
                        ('attributes', models.JSONField(blank=True, default=dict)),
                        ('consent_text', models.TextField(help_text="The form's wording when it was submitted.")),
                        ('ip_hash', models.CharField(blank=True, max_length=64)),
                        ('created_at', models.DateTimeField()),
                        ('mailed_at', models.DateTimeField(blank=True, null=True)),
                        ('confirmed_at', models.DateTimeField(blank=True, null=True)),
                        ('contact', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='contacts.contact')),
                        ('form', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='requests', to='contacts.subscriptionform')),
                    ],
                    options={
                        'db_table': 'campaigns_subscriptionrequest',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='SuppressedHash',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('address_hash', models.CharField(max_length=64)),
                        ('reason', models.CharField(choices=[('unsubscribed', 'Unsubscribed'), ('bounced', 'Bounced'), ('complained', 'Complained')], max_length=20)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='suppressed_hashes', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'campaigns_suppressedhash',
                    },
                ),
                migrations.AddConstraint(
                    model_name='contactlist',
                    constraint=models.UniqueConstraint(fields=('owner', 'name'), name='contactlist_unique_name_per_owner'),
                ),
                migrations.AddIndex(
                    model_name='importjob',
                    index=models.Index(fields=['owner', '-created_at'], name='importjob_owner_created'),
                ),
                migrations.AddIndex(
                    model_name='contact',
                    index=models.Index(fields=['owner', 'status'], name='contact_owner_status'),
                ),
                migrations.AddConstraint(
                    model_name='contact',
                    constraint=models.UniqueConstraint(django.db.models.functions.text.Lower('email'), models.F('owner'), name='contact_unique_email_per_owner', violation_error_message='You have a contact with this address already.'),
                ),
                migrations.AddIndex(
                    model_name='subscriptionrequest',
                    index=models.Index(fields=['form', 'email'], name='subscriptionrequest_address'),
                ),
                migrations.AddConstraint(
                    model_name='suppressedhash',
                    constraint=models.UniqueConstraint(fields=('owner', 'address_hash'), name='suppressedhash_unique_per_owner'),
                ),
    
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
