"""URLs for benchmarks: the product's, plus bare views used as same-run baselines."""
from django.http import HttpResponse
from django.urls import path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as product_urlpatterns


class _EchoSerializer(serializers.Serializer):
    customer = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    reference = serializers.CharField(max_length=64)


class BareDRFView(APIView):
    """What DRF alone costs: parse JSON, validate a similar serializer, render a response."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        serializer = _EchoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.data, status=201)


def bare_django_view(request):
    return HttpResponse("<!doctype html><title>ok</title><p>ok</p>")


urlpatterns = [
    path("bench/bare-drf/", BareDRFView.as_view()),
    path("bench/bare-django/", bare_django_view),
    *product_urlpatterns,
]
