# External ids are minted per link from now on (django_connectycube.models.identity).
#
# Existing links keep the external id they have: their remote users already carry it, and each
# user's ConnectyCube password is derived from it. Only a row with NO external id (written by
# code that bypassed the model's save, e.g. a raw insert) gets a minted one, since an empty id
# would be sent as "no external id" and could never be looked up again.

import django_connectycube.models.identity
from django.db import migrations, models


def mint_missing_external_ids(apps, schema_editor):
    CubeUser = apps.get_model("django_connectycube", "CubeUser")
    db = schema_editor.connection.alias
    for pk in CubeUser.objects.using(db).filter(external_id="").values_list("pk", flat=True):
        CubeUser.objects.using(db).filter(pk=pk).update(
            external_id=django_connectycube.models.identity.mint_external_id()
        )


class Migration(migrations.Migration):

    dependencies = [
        ("django_connectycube", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="cubeuser",
            name="withheld",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text=(
                    "Mapped values ConnectyCube would not take because an account that is not "
                    "this user's holds them ({field: wanted value}); the login is then a "
                    "fallback login."
                ),
                verbose_name="withheld fields",
            ),
        ),
        migrations.AlterField(
            model_name="cubeuser",
            name="external_id",
            field=models.CharField(
                default=django_connectycube.models.identity.mint_external_id,
                help_text=(
                    "Minted for this link (<prefix>-<random>) and sent as the remote user's "
                    "external_id; links made before minting keep the local primary key."
                ),
                max_length=255,
                unique=True,
                verbose_name="external id",
            ),
        ),
        migrations.RunPython(mint_missing_external_ids, migrations.RunPython.noop, elidable=True),
    ]
