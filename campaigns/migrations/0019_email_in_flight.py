# The in-flight mark of the lease fence, and the index the analytics page counts possible duplicates with.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0018_segmentcondition_operator_choices'),
    ]

    operations = [
        migrations.AddField(
            model_name='email',
            name='in_flight',
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddIndex(
            model_name='email',
            index=models.Index(condition=models.Q(('possible_duplicate', True)), fields=['campaign'], name='email_possible_duplicate'),
        ),
    ]
