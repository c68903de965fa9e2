"""The admin searches links by the start of their login: an index PostgreSQL can read for it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_connectycube', '0005_drift_verification'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='cubeuser',
            index=models.Index(fields=['login'], name='cubeuser_login_prefix_idx', opclasses=['varchar_pattern_ops']),
        ),
    ]
