# What delivery reports said after the 250 (bounces.services), and the indexes reporting and the
# soft-bounce threshold read them by.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0023_smtp_account_moves_to_sending'),
        ('contacts', '0002_smtp_account_moves_to_sending'),
    ]

    operations = [
        migrations.AddField(
            model_name='email',
            name='bounce_kind',
            field=models.CharField(blank=True, choices=[('', '—'), ('hard', 'Hard bounce'), ('soft', 'Soft bounce')], db_default='', default='', max_length=10),
        ),
        migrations.AddField(
            model_name='email',
            name='bounce_status',
            field=models.CharField(blank=True, db_default='', default='', max_length=32),
        ),
        migrations.AddField(
            model_name='email',
            name='bounce_text',
            field=models.TextField(blank=True, db_default='', default=''),
        ),
        migrations.AddField(
            model_name='email',
            name='bounced_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='email',
            name='complained_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='email',
            index=models.Index(condition=models.Q(('bounced_at__isnull', False), ('complained_at__isnull', False), _connector='OR'), fields=['campaign'], name='email_late_report'),
        ),
        migrations.AddIndex(
            model_name='email',
            index=models.Index(condition=models.Q(('bounce_kind', 'soft')), fields=['contact', 'bounced_at'], name='email_contact_soft_bounce'),
        ),
    ]
