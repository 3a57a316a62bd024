# The lease fence's mark of the row a worker may be sending, and the index the analytics page counts
# possible duplicates with.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0019_importjob_read_in_worker'),
    ]

    operations = [
        migrations.AddField(
            model_name='batchtake',
            name='sending_email_id',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='email',
            index=models.Index(condition=models.Q(('possible_duplicate', True)), fields=['campaign'], name='email_possible_duplicate'),
        ),
    ]
