import secrets

from django.conf import settings
from django.contrib.auth import get_user_model

from notifications.management.base import JsonCommand


class Command(JsonCommand):
    help = "Make sure an admin login exists and print it (the password is kept in var/admin-password.txt)."

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")

    def run(self, **options):
        User = get_user_model()
        username = options["username"]
        password_file = settings.DATA_DIR / "admin-password.txt"
        user = User.objects.filter(username=username).first()
        password = password_file.read_text().strip() if password_file.exists() else ""
        if user is None or not password or not user.check_password(password):
            password = secrets.token_urlsafe(12)
            if user is None:
                user = User.objects.create_superuser(username=username, email=f"{username}@example.com",
                                                     password=password)
            else:
                user.set_password(password)
                user.is_active = user.is_staff = user.is_superuser = True
                user.save()
            password_file.write_text(password)
            password_file.chmod(0o600)
        summary = f"Admin login: {username} / {password}  ({settings.PUBLIC_BASE_URL}/admin/)"
        return summary, {"username": username, "password": password}
