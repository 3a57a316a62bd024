# The index the analytics page counts possible duplicates with.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0019_importjob_read_in_worker'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='email',
            index=models.Index(condition=models.Q(('possible_duplicate', True)), fields=['campaign'], name='email_possible_duplicate'),
        ),
    ]
