package api

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/blindgate/blindgate/internal/apierr"
)

func statusOf(err error) int {
	var ae *apierr.Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &ae):
		return ae.Status
	case errors.As(err, &fe):
		return fe.Code
	default:
		return fiber.StatusInternalServerError
	}
}
